"""The Python API behind the tools: train, evaluate, predict, export.

Each takes a complete config (or a file); the tools turn their flags into
that config (``tools/_config_flags.py``). ``rock_plugin.apis.train`` and
``rock_plugin.apis.evaluate`` name the functions; import their modules'
other members from the module (``from rock_plugin.apis.train import
build_runner``).

Example:
    >>> from rock_plugin.apis import RockInferencer, train
    >>> runner = train(cfg)
    >>> RockInferencer('configs/rock_b4.py', 'best.pth')(['a.jpg'])
"""
from .evaluate import evaluate
from .inferencer import RockInferencer, write_predictions
from .onnx_export import export_onnx
from .train import build_runner, train
from .tta import tta_config

__all__ = ['train', 'build_runner', 'evaluate', 'RockInferencer',
           'write_predictions', 'export_onnx', 'tta_config']
