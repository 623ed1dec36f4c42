from .cached_val_loop import CachedFeatureValLoop
from .feature_cache_loop import FeatureCacheTrainLoop
from .rock_runner import RockRunner

__all__ = ['CachedFeatureValLoop', 'FeatureCacheTrainLoop', 'RockRunner']
