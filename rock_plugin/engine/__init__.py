from .cached_val_loop import CachedFeatureValLoop
from .feature_cache_loop import FeatureCacheTrainLoop
from .optim_constructor import TrainableParamsOptimWrapperConstructor

__all__ = ['TrainableParamsOptimWrapperConstructor', 'CachedFeatureValLoop',
           'FeatureCacheTrainLoop']
