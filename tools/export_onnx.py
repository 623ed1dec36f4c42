"""Export a trained rock classifier to ONNX and check it against PyTorch.

``python tools/export_onnx.py CONFIG CHECKPOINT --out rock.onnx
--check-images data/rocks``: one self-contained ``.onnx`` file (dynamic
batch, softmax scores, class names and input format in its metadata); exits
non-zero when ONNX Runtime and PyTorch differ by more than 1e-4. A thin CLI
over :func:`rock_plugin.apis.onnx_export.main`; ``--help`` lists flags.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from rock_plugin.apis.cli import run_cli  # noqa: E402
from rock_plugin.apis.onnx_export import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(run_cli(main))
