from .cpu_amp_optim_wrapper import CpuAmpOptimWrapper
from .optim_constructor import TrainableParamsOptimWrapperConstructor

__all__ = ['CpuAmpOptimWrapper', 'TrainableParamsOptimWrapperConstructor']
