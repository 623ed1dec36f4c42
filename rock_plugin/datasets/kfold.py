"""K-fold cross-validation folds: stratified, optionally grouped (sklearn).

``tools/cross_validate.py`` pools the training data, gives every image one
fold with :func:`assign_folds` and writes each fold's ``train.txt`` /
``val.txt`` (:func:`write_fold_files`), so that each fold is a normal run of
the config on annotation files a user can read and rerun.
"""
import csv
import os
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.errors import DataError
from .annotations import format_annotation_line

FOLDS_CSV_COLUMNS = ('file', 'label', 'class', 'group', 'fold')
_FOLDER_LEVEL = re.compile(r'^folder(?::(\d+))?$')


def group_keys(img_paths: Sequence[str], group_by: str) -> List[str]:
    """The sample (group) key of every image, for grouped folds.

    Args:
        img_paths (Sequence[str]): Image paths.
        group_by (str): ``'folder'`` / ``'folder:N'``: the ``N``-th folder
            above the file (1, the default, is its own folder; 2 its
            parent's). Anything else is a regular expression searched in the
            file name; its group 1 (or the whole match) is the key.

    Returns:
        list[str]: One key per image.

    Raises:
        DataError: The expression is invalid, matches no file name, or
            misses some (they would leak across folds unnoticed).

    Example:
        >>> group_keys(['a/Chert23_1.jpg', 'a/Chert23_2.jpg'], r'^(.*)_\\d+')
        ['Chert23', 'Chert23']
    """
    level = _FOLDER_LEVEL.match(group_by)
    if level:
        up = int(level.group(1) or 1)
        keys = []
        for path in img_paths:
            parts = osp.normpath(osp.abspath(path)).split(os.sep)
            if up < 1 or up >= len(parts):
                raise DataError(f'--group-by {group_by}: no folder {up} '
                                'level(s) above the file', path)
            keys.append('/'.join(parts[:-up]))
        return keys
    try:
        pattern = re.compile(group_by)
    except re.error as exc:
        raise DataError(f'--group-by {group_by!r} is not a valid regular '
                        f'expression ({exc})') from None
    keys, missed = [], []
    for path in img_paths:
        match = pattern.search(osp.basename(path))
        if match is None:
            missed.append(path)
            continue
        keys.append(match.group(1) if pattern.groups else match.group(0))
    if missed:
        names = ', '.join(osp.basename(p) for p in missed[:3])
        what = ('matches none of the' if len(missed) == len(img_paths) else
                f'does not match {len(missed)} of the')
        raise DataError(
            f'--group-by {group_by!r} {what} {len(img_paths)} file names '
            f'(e.g. {names}); the expression is searched in the file name '
            r"and group 1 is the sample key, e.g. '^(.*)_\d+\.jpg$'")
    return keys


def assign_folds(labels: Sequence[int], folds: int, seed: Optional[int] = 0,
                 groups: Optional[Sequence[str]] = None,
                 class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """The validation fold of every sample: stratified, disjoint, seeded.

    sklearn's ``StratifiedKFold`` (or ``StratifiedGroupKFold`` with
    ``groups``: all images of one group land in one fold), shuffled with
    ``seed``. Every sample is validated exactly once.

    Args:
        labels (Sequence[int]): Class of every sample.
        folds (int): Number of folds, at least 2.
        seed (int, optional): Shuffle seed.
        groups (Sequence[str], optional): Group key of every sample.
        class_names (Sequence[str], optional): For error messages.

    Returns:
        np.ndarray: ``(N,)`` fold index in ``[0, folds)``.

    Raises:
        DataError: A class has fewer images (or groups) than folds, so some
            fold could not validate it.

    Example:
        >>> assign_folds([0, 0, 1, 1], 2, seed=0).tolist()
        [1, 0, 0, 1]
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    if folds < 2:
        raise ValueError(f'--folds must be at least 2, got {folds}')
    labels = np.asarray(labels)
    unit = 'images' if groups is None else 'groups'
    for cls in np.unique(labels):
        members = labels == cls
        count = (int(members.sum()) if groups is None else
                 len({g for g, m in zip(groups, members) if m}))
        if count < folds:
            name = (class_names[cls] if class_names is not None
                    else str(cls))
            raise DataError(
                f'class {name!r} has {count} {unit}, fewer than --folds '
                f'{folds}: some fold would have none of it to validate. Use '
                f'--folds {max(2, count)} or fewer, or add {unit}')
    seed = None if seed is None else int(seed) % 2**32
    order = np.zeros(len(labels), dtype=np.int64)
    if groups is None:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    else:
        splitter = StratifiedGroupKFold(folds, shuffle=True,
                                        random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, list(groups))
    for k, (_, val) in enumerate(splits):
        order[val] = k
    return order


def write_fold_files(out_dir: str, img_paths: Sequence[str],
                     labels: Sequence[int], fold_ids: Sequence[int],
                     class_names: Sequence[str],
                     groups: Optional[Sequence[str]] = None
                     ) -> List[Tuple[str, str]]:
    """Write ``folds.csv`` and each fold's ``train.txt`` / ``val.txt``.

    Annotation lines are ``<absolute image path> <label>`` (the original
    format read by ``RockDataset``), so a fold reruns on its own with
    ``tools/train.py``.

    Args:
        out_dir (str): The cross-validation work dir; fold ``k``'s files go
            to ``fold_<k>/``.
        img_paths (Sequence[str]): Pooled image paths.
        labels (Sequence[int]): Their classes.
        fold_ids (Sequence[int]): From :func:`assign_folds`.
        class_names (Sequence[str]): Names in label order.
        groups (Sequence[str], optional): Group keys (written to the CSV).

    Returns:
        list[tuple[str, str]]: ``(train.txt, val.txt)`` of every fold.
    """
    fold_ids = np.asarray(fold_ids)
    paths = [osp.abspath(p) for p in img_paths]
    with atomic_write(osp.join(out_dir, 'folds.csv'), newline='',
                      encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(FOLDS_CSV_COLUMNS)
        for i, path in enumerate(paths):
            writer.writerow([path, int(labels[i]), class_names[labels[i]],
                             '' if groups is None else groups[i],
                             int(fold_ids[i])])
    files = []
    for k in range(int(fold_ids.max()) + 1):
        fold_dir = osp.join(out_dir, f'fold_{k}')
        os.makedirs(fold_dir, exist_ok=True)
        pair = []
        for name, keep in (('train.txt', fold_ids != k),
                           ('val.txt', fold_ids == k)):
            path = osp.join(fold_dir, name)
            with atomic_write(path, encoding='utf-8') as f:
                for i in np.flatnonzero(keep):
                    f.write(format_annotation_line(paths[i], labels[i]) +
                            '\n')
            pair.append(path)
        files.append(tuple(pair))
    return files


def read_folds_csv(path: str) -> List[dict]:
    """Rows of a ``folds.csv`` written by :func:`write_fold_files`."""
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row['label'] = int(row['label'])
        row['fold'] = int(row['fold'])
    return rows
