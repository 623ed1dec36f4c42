"""rock_plugin: rock image classification as an MMPretrain plugin.

Importing the package registers its dataset, metric, hooks, models and the
stack fixes of :mod:`rock_plugin.compat` into the OpenMMLab registries; configs
do it with ``custom_imports = dict(imports=['rock_plugin'])``.
"""
import warnings

# mmcv-lite has no compiled ops; mmcv warns about one we never use.
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformable')

from . import compat  # noqa: E402,F401  (registers safe loading first)
from . import datasets, engine, evaluation, hooks, models  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
