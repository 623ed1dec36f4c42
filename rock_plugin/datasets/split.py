"""Seeded, stratified fold split (the original's ``--split-validation``)."""
from typing import List, Optional, Sequence, Tuple

import numpy as np


def num_folds(ratio: float) -> int:
    """Number of folds for a validation ratio, as the original: ``int(1/ratio)``."""
    if not 0 < ratio < 1:
        raise ValueError(f'ratio must be in (0, 1), got {ratio}')
    return max(1, int(1.0 / ratio))


def default_fold(seed: Optional[int], ratio: float) -> int:
    """The fold chosen when none is given: derived from the seed, so fixed."""
    return int(seed or 0) % num_folds(ratio)


def stratified_fold_split(labels: Sequence[int], ratio: float = 0.2,
                          fold: Optional[int] = None,
                          seed: Optional[int] = 0
                          ) -> Tuple[List[int], List[int]]:
    """Split sample indices into train and validation parts, per class.

    Each class's indices are shuffled with ``seed`` and cut into consecutive
    slices of ``round(n_c * ratio)`` samples; slice ``fold`` is validation.
    Different folds of one seed never overlap, the same arguments always give
    the same split, and every class keeps its share (a class with at least two
    samples keeps at least one in each part).

    The original shuffled all lines and cut ``int(N*ratio)`` of them, so small
    classes could vanish from validation; stratifying fixes that.

    Args:
        labels (Sequence[int]): Label of each sample.
        ratio (float): Fraction of each class used for validation.
        fold (int, optional): Which of ``int(1/ratio)`` folds is validation.
            Defaults to :func:`default_fold` of the seed.
        seed (int, optional): Shuffle seed. Defaults to 0.

    Returns:
        tuple[list[int], list[int]]: Sorted train and validation indices.

    Example:
        >>> train, val = stratified_fold_split([0] * 5 + [1] * 5, 0.2, 0, 1)
        >>> len(train), len(val)
        (8, 2)
    """
    folds = num_folds(ratio)
    if fold is None:
        fold = default_fold(seed, ratio)
    if not 0 <= fold < folds:
        raise ValueError(f'fold must be in [0, {folds - 1}] for ratio {ratio}, '
                         f'got {fold}')
    rng = np.random.default_rng(0 if seed is None else seed)
    labels = np.asarray(labels)
    train, val = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * ratio))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        start = min(fold * n_val, len(idx) - n_val)
        # The last fold takes the remainder so that all folds cover the class.
        stop = len(idx) if fold == folds - 1 and folds > 1 else start + n_val
        val.extend(idx[start:stop].tolist())
        train.extend(np.concatenate([idx[:start], idx[stop:]]).tolist())
    return sorted(train), sorted(val)
