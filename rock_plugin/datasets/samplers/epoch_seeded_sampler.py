"""``EpochSeededSampler``: augmentation drawn from (seed, epoch, sample,
draw)."""
import logging
import random
from collections import Counter
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import sync_random_seed
from mmengine.logging import print_log
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler, get_worker_info


class SeededIndex(int):
    """A dataset index (an ``int`` everywhere, pickling included) that
    carries its augmentation seed ``(seed, epoch)`` and ``draw``: how many
    times the index came before in the epoch (a sampler with replacement
    draws an image more than once)."""

    def __new__(cls, index: int, aug_seed: Sequence[int] = (),
                draw: int = 0):
        self = super().__new__(cls, index)
        self.aug_seed = tuple(int(s) for s in aug_seed)
        self.draw = int(draw)
        return self

    def __reduce__(self):
        return SeededIndex, (int(self), self.aug_seed, self.draw)

    @property
    def rng_key(self) -> tuple:
        """The key :func:`seeded_rng` gets: ``(*aug_seed, index)``, plus
        ``draw`` for a repeat. A first draw keeps the key it always had;
        ``SeedSequence`` ignores trailing zero words, so only a non-zero
        ``draw`` may be appended."""
        key = (*self.aug_seed, int(self))
        return key + (self.draw, ) if self.draw else key


@contextmanager
def seeded_rng(key: Sequence[int], restore: bool = True):
    """Seed Python's, NumPy's and torch's CPU generators from ``key``.

    Args:
        key (Sequence[int]): Non-negative integers (NumPy ``SeedSequence``).
        restore (bool): Restore the states after (~0.2 ms; workers skip it).
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
    :class:`EpochSeededSampler` attached to the index (plain indices are
    served as before). Put it before the dataset base class."""

    def prepare_data(self, idx):
        aug_seed = getattr(idx, 'aug_seed', None)
        if aug_seed is None:
            return super().prepare_data(idx)
        with seeded_rng(idx.rng_key, restore=get_worker_info() is None):
            return super().prepare_data(int(idx))


def _with_draws(indices: Iterator[int],
                aug_seed: tuple) -> Iterator[SeededIndex]:
    # Counted here, in the main process, from the epoch's order: the same
    # with any number of workers and after --resume.
    draws: Counter = Counter()
    for i in indices:
        yield SeededIndex(i, aug_seed, draws[i])
        draws[i] += 1


@DATA_SAMPLERS.register_module()
class EpochSeededSampler(Sampler):
    """Hand the wrapped sampler's indices over as :class:`SeededIndex`, so
    that :class:`SeededAugmentMixin` makes every augmentation a function of
    (seed, epoch, index, draw): mmengine's per-worker seeding makes it
    depend on the worker count, repeat every epoch and restart after
    ``--resume``. ``draw`` counts an index's earlier draws in the epoch (in
    this process), so a sampler with replacement (``ClassBalancedSampler``)
    gives each draw of an image its own augmentation.

    Args:
        dataset: The dataset (given by the runner).
        sampler (dict, optional): Wrapped sampler; ``DefaultSampler``.
        seed (int, optional): The run's seed; None draws one for all ranks.
        **kwargs: More arguments of the wrapped sampler (``shuffle``...).

    Example:
        >>> train_dataloader = dict(
        ...     sampler=dict(type='EpochSeededSampler', shuffle=True))
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
        # The epoch and the wrapped order are taken now, as iter() is called.
        return _with_draws(iter(self.sampler), (self.seed, self.epoch))

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Called by ``DistSamplerSeedHook`` before every training epoch."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)
