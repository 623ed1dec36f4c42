from .backbones import EfficientNetLite
from .classifiers import RockImageClassifier
from .heads import OpenSetLinearClsHead
from .necks import ConcatGlobalAveragePooling
from .tta import LogMeanClsScoreTTA

__all__ = ['RockImageClassifier', 'EfficientNetLite',
           'ConcatGlobalAveragePooling', 'OpenSetLinearClsHead',
           'LogMeanClsScoreTTA']
