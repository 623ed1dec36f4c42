"""Predict rock classes: ``python tools/predict.py CONFIG CKPT INPUT``.

INPUT is an image, a folder (recursive) or a video (every ``--every-n``-th
frame); prints a table and writes ``--out preds.csv|.json``. ``--backend
onnxruntime --onnx model.onnx`` runs an export of ``tools/export_onnx.py``.
A thin CLI over :func:`rock_plugin.apis.inferencer.predict_main`; ``--help``
lists flags.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from rock_plugin.apis.cli import run_cli  # noqa: E402
from rock_plugin.apis.inferencer import predict_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(run_cli(predict_main))
