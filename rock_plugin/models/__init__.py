from .backbones import EfficientNetLite
from .classifiers import RockImageClassifier
from .necks import ConcatGlobalAveragePooling

__all__ = ['RockImageClassifier', 'EfficientNetLite',
           'ConcatGlobalAveragePooling']
