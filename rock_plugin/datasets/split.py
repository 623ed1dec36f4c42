"""Seeded, stratified fold split (the original's ``--split-validation``)."""
import hashlib
import os
from collections import Counter, defaultdict
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


def content_groups(paths: Sequence[str]) -> List[str]:
    """A group key per file: byte-identical files share one.

    Only files whose size another file shares are read and hashed, so a
    dataset without copies costs one ``stat`` per file. A file that cannot be
    read is its own group (the loader reports it).

    Args:
        paths (Sequence[str]): Image files.

    Returns:
        list[str]: ``'sha256:<hex>'`` for files with a byte-identical copy in
        ``paths``, the path itself otherwise.

    Example:
        >>> content_groups(['a.jpg', 'copy of a.jpg', 'b.jpg'])
        ['sha256:3f...', 'sha256:3f...', 'b.jpg']
    """
    by_size = defaultdict(list)
    for i, path in enumerate(paths):
        try:
            by_size[os.stat(path).st_size].append(i)
        except OSError:
            pass
    keys = list(paths)
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        digests = {}
        for i in same_size:
            try:
                with open(paths[i], 'rb') as f:
                    digests[i] = 'sha256:' + hashlib.sha256(
                        f.read()).hexdigest()
            except OSError:
                continue
        repeats = Counter(digests.values())
        for i, digest in digests.items():
            if repeats[digest] > 1:
                keys[i] = digest
    return keys


def stratified_fold_split(labels: Sequence[int], ratio: float = 0.2,
                          fold: Optional[int] = None,
                          seed: Optional[int] = 0,
                          groups: Optional[Sequence[str]] = None
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
        groups (Sequence[str], optional): A key per sample; samples sharing
            one (e.g. copies of one file, see :func:`content_groups`) land
            in the same part. The first sample of each group is split and
            the others follow it, so all-distinct keys give the plain split.

    Returns:
        tuple[list[int], list[int]]: Sorted train and validation indices.

    Example:
        >>> train, val = stratified_fold_split([0] * 5 + [1] * 5, 0.2, 0, 1)
        >>> len(train), len(val)
        (8, 2)
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
