"""``EpochSeededSampler``: augmentation drawn from (seed, epoch, sample)."""
import logging
import random
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import sync_random_seed
from mmengine.logging import print_log
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler, get_worker_info


class SeededIndex(int):
    """A dataset index that carries its augmentation seed ``(seed, epoch)``.

    An ``int`` everywhere (batching, indexing, pickling to workers), so a
    dataset without :class:`SeededAugmentMixin` just sees the index.

    Example:
        >>> idx = SeededIndex(5, (0, 3))  # sample 5, seed 0, epoch 3
        >>> idx + 1, idx.aug_seed
        (6, (0, 3))
    """

    def __new__(cls, index: int, aug_seed: Sequence[int] = ()):
        self = super().__new__(cls, index)
        self.aug_seed = tuple(int(s) for s in aug_seed)
        return self

    def __reduce__(self):
        return SeededIndex, (int(self), self.aug_seed)


@contextmanager
def seeded_rng(key: Sequence[int], restore: bool = True):
    """Seed Python's, NumPy's and torch's CPU generators from ``key`` for
    the block.

    Args:
        key (Sequence[int]): Non-negative integers, hashed with NumPy's
            ``SeedSequence``.
        restore (bool): Give the caller's generator states back after the
            block. Needed in the training process (``num_workers=0``), whose
            own random stream must not depend on the pipeline; a data-loader
            worker skips it (NumPy's state copies cost ~0.2 ms a sample).

    Example:
        >>> with seeded_rng((seed, epoch, index)):
        ...     crop = np.random.randint(10)  # the same in every process
    """
    words = np.random.SeedSequence([int(k) % 2**64 for k in key]) \
        .generate_state(4, np.uint64)
    saved = (random.getstate(), np.random.get_state(),
             torch.default_generator.get_state()) if restore else None
    random.seed(int(words[0]))
    np.random.seed(words[1:3].view(np.uint32))
    torch.default_generator.manual_seed(int(words[3]) & (2**63 - 1))
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.default_generator.set_state(saved[2])


class SeededAugmentMixin:
    """Run a dataset's pipeline under the seed that
    :class:`EpochSeededSampler` attached to the index.

    Put it before the dataset base class
    (``class RockDataset(SeededAugmentMixin, BaseDataset)``). Plain integer
    indices (validation, tools, other samplers) are served as before.
    """

    def prepare_data(self, idx):
        aug_seed = getattr(idx, 'aug_seed', None)
        if aug_seed is None:
            return super().prepare_data(idx)
        in_worker = get_worker_info() is not None
        with seeded_rng((*aug_seed, int(idx)), restore=not in_worker):
            return super().prepare_data(int(idx))


@DATA_SAMPLERS.register_module()
class EpochSeededSampler(Sampler):
    """Make every random augmentation a pure function of
    (run seed, epoch, sample index).

    mmengine seeds each data-loader worker once, from ``seed + worker_id``:
    the crops and flips then depend on the worker count, repeat every epoch
    (``persistent_workers=False``), or restart from epoch 1 after
    ``--resume`` (``persistent_workers=True``: worker states are not in the
    checkpoint). This sampler iterates the wrapped sampler unchanged (same
    order, same shards) in the main process, which sees ``set_epoch`` even
    with persistent workers, and hands each index over as a
    :class:`SeededIndex` carrying ``(seed, epoch)``. A dataset with
    :class:`SeededAugmentMixin` (``RockDataset``) seeds the generators from
    ``(seed, epoch, index)`` around that sample's pipeline. So a resumed
    run, a run with 0, 2 or 4 workers and a run on another rank count draw
    the same augmentation for a sample in a given epoch, and no two epochs
    draw the same.

    Args:
        dataset: The dataset (given by the runner).
        sampler (dict, optional): The wrapped sampler's config. Defaults to
            ``dict(type='DefaultSampler')``.
        seed (int, optional): The run's seed (given by the runner); None
            draws one shared by all ranks.
        **kwargs: More arguments of the wrapped sampler (``shuffle``,
            ``round_up``...), so that this is a drop-in for mmengine's
            ``DefaultSampler`` in configs.

    Example:
        >>> train_dataloader = dict(
        ...     sampler=dict(type='EpochSeededSampler', shuffle=True))
        >>> # any other sampler:
        >>> train_dataloader = dict(sampler=dict(
        ...     type='EpochSeededSampler',
        ...     sampler=dict(type='ClassBalancedSampler')))
    """

    def __init__(self, dataset, sampler: Optional[dict] = None,
                 seed: Optional[int] = None, **kwargs):
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.sampler = DATA_SAMPLERS.build(
            dict(sampler or dict(type='DefaultSampler'), **kwargs),
            default_args=dict(dataset=dataset, seed=self.seed))
        self.epoch = 0
        if not isinstance(dataset, SeededAugmentMixin):
            print_log(f'EpochSeededSampler: {type(dataset).__name__} has no '
                      'SeededAugmentMixin; its augmentation is seeded per '
                      'worker, not per sample', logger='current',
                      level=logging.WARNING)

    def __iter__(self) -> Iterator[SeededIndex]:
        aug_seed = (self.seed, self.epoch)
        return (SeededIndex(i, aug_seed) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Called by ``DistSamplerSeedHook`` before every training epoch."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)
