from .backbones import EfficientNetLite
from .classifiers import DihedralMeanClassifier, RockImageClassifier
from .heads import OpenSetLinearClsHead, OpenSetMLPClsHead
from .necks import ConcatGlobalAveragePooling
from .tta import LogMeanClsScoreTTA

__all__ = ['RockImageClassifier', 'DihedralMeanClassifier',
           'EfficientNetLite', 'ConcatGlobalAveragePooling',
           'OpenSetLinearClsHead', 'OpenSetMLPClsHead', 'LogMeanClsScoreTTA']
