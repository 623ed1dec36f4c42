from .distributed import (RockDistributedDataParallel, init_distributed,
                          use_cuda)
from . import hooks  # noqa: F401  (registers the hooks)
from .optimizers import (CpuAmpOptimWrapper,
                         TrainableParamsOptimWrapperConstructor)
from .runners import CachedFeatureValLoop, FeatureCacheTrainLoop, RockRunner

__all__ = ['TrainableParamsOptimWrapperConstructor', 'CachedFeatureValLoop',
           'FeatureCacheTrainLoop', 'CpuAmpOptimWrapper', 'RockRunner',
           'RockDistributedDataParallel', 'init_distributed', 'use_cuda']
