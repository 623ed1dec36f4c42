from .rock_classifier import RockImageClassifier

__all__ = ['RockImageClassifier']

try:  # the Lite0 backbone needs timm (installed with the package)
    from .efficientnet_lite import EfficientNetLite  # noqa: F401
    __all__.append('EfficientNetLite')
except ImportError:  # pragma: no cover
    pass
