from .backbones import EfficientNetLite
from .classifiers import RockImageClassifier
from .heads import OpenSetLinearClsHead
from .necks import ConcatGlobalAveragePooling

__all__ = ['RockImageClassifier', 'EfficientNetLite',
           'ConcatGlobalAveragePooling', 'OpenSetLinearClsHead']
