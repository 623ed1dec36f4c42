"""Seeded, stratified fold split (the original's ``--split-validation``),
hand-written rather than sklearn's: the folds of earlier runs must stay."""
import contextlib
import hashlib
import os
from collections import Counter, defaultdict
from typing import List, Optional, Sequence, Tuple

import numpy as np


def num_folds(ratio: float) -> int:
    """Number of folds for a validation ratio: ``int(1/ratio)``."""
    if not 0 < ratio < 1:
        raise ValueError(f'ratio must be in (0, 1), got {ratio}')
    return max(1, int(1.0 / ratio))


def default_fold(seed: Optional[int], ratio: float) -> int:
    """The fold chosen when none is given: derived from the seed, so fixed."""
    return int(seed or 0) % num_folds(ratio)


def content_groups(paths: Sequence[str]) -> List[str]:
    """A group key per file: ``'sha256:<hex>'`` shared by byte-identical
    files (only same-size files are hashed), else the path itself."""
    by_size = defaultdict(list)
    for i, path in enumerate(paths):
        with contextlib.suppress(OSError):
            by_size[os.stat(path).st_size].append(i)
    digests = {}
    for same_size in by_size.values():
        for i in same_size if len(same_size) > 1 else ():
            with contextlib.suppress(OSError), open(paths[i], 'rb') as f:
                digests[i] = 'sha256:' + hashlib.sha256(f.read()).hexdigest()
    # Sizes differ across buckets, so one count over all digests is safe.
    repeats = Counter(digests.values())
    return [digests[i] if repeats[digests.get(i)] > 1 else path
            for i, path in enumerate(paths)]


def stratified_fold_split(labels: Sequence[int], ratio: float = 0.2,
                          fold: Optional[int] = None,
                          seed: Optional[int] = 0,
                          groups: Optional[Sequence[str]] = None
                          ) -> Tuple[List[int], List[int]]:
    """Split sample indices into train and validation parts, per class.

    Each class's indices are shuffled with ``seed`` and cut into slices of
    ``round(n_c * ratio)``; slice ``fold`` is validation. A class with two
    samples or more keeps one in each part.

    Args:
        labels (Sequence[int]): Label of each sample.
        ratio (float): Fraction of each class used for validation.
        fold (int, optional): Validation fold; :func:`default_fold` if None.
        seed (int, optional): Shuffle seed. Defaults to 0.
        groups (Sequence[str], optional): Samples sharing a key share a part.

    Returns:
        tuple[list[int], list[int]]: Sorted train and validation indices.

    Example:
        >>> stratified_fold_split([0] * 5 + [1] * 5, 0.2, fold=0, seed=1)
    """
    if groups is not None:
        first = {}
        for i, group in enumerate(groups):
            first.setdefault(group, i)
        heads = sorted(first.values())
        _, val_heads = stratified_fold_split([labels[i] for i in heads],
                                             ratio, fold, seed)
        val_groups = {groups[heads[j]] for j in val_heads}
        in_val = [group in val_groups for group in groups]
        return ([i for i, v in enumerate(in_val) if not v],
                [i for i, v in enumerate(in_val) if v])
    folds = num_folds(ratio)
    if fold is None:
        fold = default_fold(seed, ratio)
    if not 0 <= fold < folds:
        raise ValueError(f'fold must be in [0, {folds - 1}] for ratio '
                         f'{ratio}, got {fold}')
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
