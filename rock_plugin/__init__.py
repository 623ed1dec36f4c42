"""rock_plugin: rock image classification as an MMPretrain plugin.

Importing the package registers its dataset, metric, hooks, models, runner and
stack fixes into the OpenMMLab registries and changes nothing else; configs
do it with ``custom_imports = dict(imports=['rock_plugin'])``.
"""
import warnings

# mmcv-lite has no compiled ops; mmcv warns about one we never use.
warnings.filterwarnings('ignore',
                        message='Fail to import ``MultiScaleDeformable')

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
