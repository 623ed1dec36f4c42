from .efficientnet_lite import EfficientNetLite
from .stages import StageChain

__all__ = ['EfficientNetLite', 'StageChain']
