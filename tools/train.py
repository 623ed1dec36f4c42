"""Train a rock classifier: ``python tools/train.py configs/rock_b4.py``.

A thin CLI over :func:`rock_plugin.apis.train.train`; ``--help`` lists flags.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from rock_plugin.apis.cli import run_cli  # noqa: E402
from rock_plugin.apis.train import train  # noqa: E402

if __name__ == '__main__':
    sys.exit(run_cli(train))
