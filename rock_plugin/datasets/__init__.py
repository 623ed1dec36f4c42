from rock_plugin.utils.errors import DataError
from .annotations import load_annotations, load_classes
from .kfold import assign_folds, group_keys
from .rock_dataset import RockDataset
from .samplers import (ClassBalancedSampler, EpochSeededSampler,
                       SeededAugmentMixin)
from .split import stratified_fold_split
from .transforms import (LoadImageWithPreResize, LoadRockImage,
                         RandomRotate90, read_rgb)

__all__ = ['RockDataset', 'DataError', 'load_annotations', 'load_classes',
           'stratified_fold_split', 'LoadImageWithPreResize', 'read_rgb',
           'ClassBalancedSampler', 'EpochSeededSampler',
           'SeededAugmentMixin', 'assign_folds', 'group_keys',
           'RandomRotate90',
           'LoadRockImage']  # the earlier name, kept for imports
