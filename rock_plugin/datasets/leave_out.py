"""Leave-classes-out splits for open-set cross-validation: which classes a
repeat hides from training, and its annotation files."""
import math
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write, atomic_write_csv
from rock_plugin.utils.errors import DataError
from .annotations import format_annotation_line
from .kfold import FOLDS_CSV_COLUMNS


def draw_left_out_classes(num_classes: int, k: int, repeats: int,
                          seed: Optional[int] = 0) -> List[List[int]]:
    """The ``k`` classes each repeat leaves out, drawn at random: no subset
    comes twice until every subset of ``k`` classes has come once.

    Args:
        num_classes (int): Classes of the data.
        k (int): Classes left out per repeat, at least 1; two classes or
            more must stay known.
        repeats (int): Number of repeats, at least 1.
        seed (int, optional): Seed of the draws.

    Returns:
        list[list[int]]: Per repeat, the sorted labels left out.

    Raises:
        DataError: ``k`` leaves fewer than two known classes.

    Example:
        >>> draw_left_out_classes(5, 1, 3, seed=0)
        [[4], [3], [2]]
    """
    if repeats < 1:
        raise ValueError(f'repeats= must be at least 1, got {repeats}')
    if not 1 <= k <= num_classes - 2:
        raise DataError(
            f'leave_out_classes={k}: the data has {num_classes} classes and '
            'a classifier needs two known classes; leave out 1 to '
            f'{num_classes - 2}')
    rng = np.random.default_rng(None if seed is None else int(seed) % 2**32)
    total, seen, draws = math.comb(num_classes, k), set(), []
    for _ in range(repeats):
        if len(seen) == total:  # every subset came once: another round
            seen.clear()
        while True:
            subset = tuple(sorted(
                rng.choice(num_classes, k, replace=False).tolist()))
            if subset not in seen:
                break
        seen.add(subset)
        draws.append(list(subset))
    return draws


def write_leave_out_files(out_dir: str, img_paths: Sequence[str],
                          labels: Sequence[int], fold_ids: Sequence[int],
                          class_names: Sequence[str],
                          draws: Sequence[Sequence[int]],
                          groups: Optional[Sequence[str]] = None
                          ) -> List[dict]:
    """Write ``out_dir/folds.csv`` (as :func:`~.kfold.write_fold_files`)
    and, for repeat ``r``, ``repeat_<r>/``: ``train.txt`` and ``val.txt``
    (the known classes' images outside / inside validation fold
    ``r % folds``, labelled in known-class order, the left-out classes
    absent) and ``open_set.txt`` (``val.txt`` plus every image of the
    left-out classes, labelled after the known ones).

    Args:
        out_dir (str): Folder of the cross-validation.
        img_paths (Sequence[str]): Image paths.
        labels (Sequence[int]): Their classes.
        fold_ids (Sequence[int]): Their folds (:func:`~.kfold.assign_folds`).
        class_names (Sequence[str]): Names in label order.
        draws (Sequence[Sequence[int]]): From
            :func:`draw_left_out_classes`.
        groups (Sequence[str], optional): Group keys, for ``folds.csv``.

    Returns:
        list[dict]: Per repeat ``repeat``, ``val_fold``, ``left_out`` and
        ``known`` (names; ``open_set.txt``'s classes are ``known +
        left_out``).
    """
    fold_ids = np.asarray(fold_ids)
    labels = np.asarray(labels)
    paths = [osp.abspath(p) for p in img_paths]
    atomic_write_csv(osp.join(out_dir, 'folds.csv'), [FOLDS_CSV_COLUMNS] + [
        [path, int(labels[i]), class_names[labels[i]],
         '' if groups is None else groups[i], int(fold_ids[i])]
        for i, path in enumerate(paths)])
    folds, repeats = int(fold_ids.max()) + 1, []
    for r, left_out in enumerate(draws):
        known = [c for c in range(len(class_names)) if c not in left_out]
        new_label = {c: i for i, c in enumerate([*known, *left_out])}
        val_fold = r % folds
        is_known = np.isin(labels, known)
        in_val = is_known & (fold_ids == val_fold)
        parts = dict(train=is_known & ~in_val, val=in_val,
                     open_set=in_val | ~is_known)
        for name, keep in parts.items():
            path = osp.join(out_dir, f'repeat_{r}', f'{name}.txt')
            with atomic_write(path, encoding='utf-8') as f:
                f.writelines(
                    format_annotation_line(paths[i], new_label[labels[i]])
                    + '\n' for i in np.flatnonzero(keep))
        repeats.append(dict(repeat=r, val_fold=val_fold,
                            left_out=[class_names[c] for c in left_out],
                            known=[class_names[c] for c in known]))
    return repeats
