from .class_balanced_sampler import ClassBalancedSampler
from .epoch_seeded_sampler import EpochSeededSampler, SeededAugmentMixin

__all__ = ['ClassBalancedSampler', 'EpochSeededSampler', 'SeededAugmentMixin']
