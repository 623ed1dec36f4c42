from .cached_val_loop import CachedFeatureValLoop
from .cpu_amp_optim_wrapper import CpuAmpOptimWrapper
from .distributed import (RockDistributedDataParallel, init_distributed,
                          use_cuda)
from .feature_cache_loop import FeatureCacheTrainLoop
from .optim_constructor import TrainableParamsOptimWrapperConstructor
from .rock_runner import RockRunner

__all__ = ['TrainableParamsOptimWrapperConstructor', 'CachedFeatureValLoop',
           'FeatureCacheTrainLoop', 'CpuAmpOptimWrapper', 'RockRunner',
           'RockDistributedDataParallel', 'init_distributed', 'use_cuda']
