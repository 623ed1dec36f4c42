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
    """Sample with replacement, each image weighted by ``1 / n_class``.

    An epoch still has ``len(dataset)`` draws (``num_samples`` to change
    that), but every class is drawn about equally often: rare classes'
    images repeat, common classes' images are seen less. Distributed runs
    draw one sequence from the shared seed and give each rank its slice, as
    mmengine's ``DefaultSampler`` does; ``set_epoch`` reseeds each epoch, so
    a resumed run draws what the uninterrupted one would.

    torch's ``WeightedRandomSampler`` draws the same way
    (``torch.multinomial``) but has no per-epoch seed and no rank split,
    hence this class.

    Args:
        dataset: The training dataset (``get_gt_labels()``).
        num_samples (int, optional): Draws per epoch over all ranks.
            Defaults to ``len(dataset)``.
        seed (int, optional): Defaults to a seed shared by all ranks.
        shuffle (bool): Accepted so that the sampler can replace mmengine's
            ``DefaultSampler`` in a config; it always draws at random.

    Example:
        >>> train_dataloader = dict(sampler=dict(type='ClassBalancedSampler'))
        >>> # python tools/train.py CONFIG --balanced-sampler
    """

    def __init__(self, dataset, num_samples: Optional[int] = None,
                 seed: Optional[int] = None, shuffle: bool = True):
        if not shuffle:
            raise ValueError('ClassBalancedSampler draws at random; '
                             'shuffle=False is not possible')
        self.rank, self.world_size = get_dist_info()
        labels = np.asarray(dataset.get_gt_labels(), dtype=np.int64)
        counts = np.bincount(labels)
        self.weights = torch.as_tensor(1.0 / counts[labels],
                                       dtype=torch.double)
        self.total = int(num_samples or len(labels))
        self.num_samples = math.ceil(self.total / self.world_size)
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator()
        gen.manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights,
                                  self.num_samples * self.world_size,
                                  replacement=True, generator=gen).tolist()
        return iter(draws[self.rank::self.world_size])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
