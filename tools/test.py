"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``.

Prints the per-class table and writes ``per_class.csv``,
``confusion_matrix.csv/.png``, ``prediction_results.csv`` and
``summary.json`` to ``<work dir>/test_results`` (``--results-dir``). A thin
CLI over :func:`rock_plugin.apis.evaluate.evaluate`; ``--help`` lists flags.
Several processes: ``bash tools/dist_test.sh CONFIG CHECKPOINT N``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from rock_plugin.apis.cli import run_cli  # noqa: E402
from rock_plugin.apis.evaluate import evaluate  # noqa: E402

if __name__ == '__main__':
    sys.exit(run_cli(evaluate))
