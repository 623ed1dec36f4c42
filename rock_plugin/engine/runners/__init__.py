from .cached_val_loop import CachedFeatureValLoop
from .feature_cache_loop import FeatureCacheTrainLoop
from .safe_loading_runner import RockRunner, SafeLoadingRunner

__all__ = ['CachedFeatureValLoop', 'FeatureCacheTrainLoop',
           'SafeLoadingRunner', 'RockRunner']
