"""Benchmark our trainer against stock mmpretrain/MMEngine: one table.

``python tools/benchmark.py`` (CPU, a few minutes) or
``python tools/benchmark.py --device cuda --amp``; ``--tiny`` is a
seconds-long smoke run and ``--out results.json`` keeps the numbers. A thin
CLI over :func:`rock_plugin.apis.benchmark.main`; ``--help`` lists flags.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from rock_plugin.apis.cli import run_cli  # noqa: E402
from rock_plugin.apis.benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(run_cli(main))
