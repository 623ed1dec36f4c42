"""``ClassBalancedSampler``: draw every class about equally often."""
import math
from typing import Iterator, Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(Sampler):
    """Sample with replacement, each image weighted by ``1 / n_class``, like
    torch's ``WeightedRandomSampler`` plus a per-epoch seed (a resumed run
    draws the same) and a split across ranks. Inside ``EpochSeededSampler``
    each draw of an image gets its own augmentation.

    Args:
        dataset: The training dataset (``get_gt_labels()``).
        num_samples (int, optional): Draws per epoch; ``len(dataset)``.
        seed (int, optional): Defaults to a seed shared by all ranks.
        shuffle (bool): Must be True (accepted like ``DefaultSampler``'s).

    Example:
        >>> train_dataloader = dict(sampler=dict(type='ClassBalancedSampler'))
    """

    def __init__(self, dataset, num_samples: Optional[int] = None,
                 seed: Optional[int] = None, shuffle: bool = True):
        if not shuffle:
            raise ValueError('ClassBalancedSampler draws at random; '
                             'shuffle=False is not possible')
        self.rank, self.world_size = get_dist_info()
        labels = np.asarray(dataset.get_gt_labels(), dtype=np.int64)
        self.weights = torch.as_tensor(1.0 / np.bincount(labels)[labels],
                                       dtype=torch.double)
        self.total = int(num_samples or len(labels))
        self.num_samples = math.ceil(self.total / self.world_size)
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights,
                                  self.num_samples * self.world_size,
                                  replacement=True, generator=gen).tolist()
        return iter(draws[self.rank::self.world_size])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
