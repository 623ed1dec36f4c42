from .distributed import (CpuCompatibleDistributedDataParallel,
                          RockDistributedDataParallel, init_distributed,
                          use_cuda)
from . import hooks  # noqa: F401  (registers the hooks)
from .optimizers import (CpuAmpOptimWrapper,
                         TrainableParamsOptimWrapperConstructor)
from .runners import (CachedFeatureValLoop, FeatureCacheTrainLoop,
                      RockRunner, SafeLoadingRunner)

__all__ = ['TrainableParamsOptimWrapperConstructor', 'CachedFeatureValLoop',
           'FeatureCacheTrainLoop', 'CpuAmpOptimWrapper', 'SafeLoadingRunner',
           'CpuCompatibleDistributedDataParallel', 'init_distributed',
           'use_cuda',
           # earlier names, kept for imports
           'RockRunner', 'RockDistributedDataParallel']
