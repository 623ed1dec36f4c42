from .concat_gap import ConcatGlobalAveragePooling
from .efficientnet_lite import EfficientNetLite
from .rock_classifier import RockImageClassifier

__all__ = ['RockImageClassifier', 'EfficientNetLite',
           'ConcatGlobalAveragePooling']
