"""K-fold cross-validation folds (sklearn), each written as annotation files
that a user can read and rerun as a normal run."""
import csv
import os
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write, atomic_write_csv
from rock_plugin.utils.errors import DataError
from rock_plugin.utils.text import from_csv_cell
from .annotations import format_annotation_line

FOLDS_CSV_COLUMNS = ('file', 'label', 'class', 'group', 'fold')
_FOLDER_LEVEL = re.compile(r'^folder(?::(\d+))?$')
# A file name is short: any sane pattern searches it in microseconds, and one
# that backtracks catastrophically ((a|aa)+$) would run for ages.
NAME_PATTERN_TIMEOUT = 1.0  # seconds per file name


def compile_name_pattern(expression: str, name: str = 'group_by'):
    """Compile a user's regular expression on file names, for
    :func:`search_file_names` (the ``regex`` package, whose searches can be
    given a time limit; its syntax is that of ``re``).

    Args:
        expression (str): The regular expression.
        name (str): The argument it came from, for the message.

    Returns:
        regex.Pattern: The compiled pattern.

    Raises:
        DataError: The expression is invalid.

    Example:
        >>> compile_name_pattern(r'^(.*)_\\d+').groups
        1
    """
    import regex
    try:
        return regex.compile(expression)
    except regex.error as exc:
        raise DataError(f'{name}={expression!r} is not a valid regular '
                        f'expression ({exc})') from None


def search_file_names(pattern, paths: Sequence[str],
                      name: str = 'group_by',
                      timeout: float = NAME_PATTERN_TIMEOUT) -> list:
    """Search ``pattern`` in the file name of every path, each search
    limited to ``timeout`` seconds.

    Args:
        pattern (regex.Pattern): From :func:`compile_name_pattern`.
        paths (Sequence[str]): File paths; their base names are searched.
        name (str): The argument the pattern came from, for the message.
        timeout (float): Most seconds one file name may take.

    Returns:
        list: A match object (or None) per path.

    Raises:
        DataError: A search ran over ``timeout`` (naming the pattern and the
            file): one line instead of a run that never ends.

    Example:
        >>> p = compile_name_pattern(r'^(.*)_\\d+')
        >>> [m.group(1) for m in search_file_names(p, ['x/S1_2.jpg'])]
        ['S1']
    """
    from rock_plugin.utils.text import printable
    matches = []
    for path in paths:
        try:
            matches.append(pattern.search(osp.basename(path),
                                          timeout=timeout))
        except TimeoutError:
            raise DataError(
                f'{name}={pattern.pattern!r}: the pattern took over '
                f'{timeout:g} s on {printable(path)}; simplify it (e.g. '
                r"'^(.*)_\d+\.jpg$')") from None
    return matches


def group_keys(img_paths: Sequence[str], group_by: str) -> List[str]:
    """The sample (group) key of every image, for grouped folds.

    Args:
        img_paths (Sequence[str]): Image paths.
        group_by (str): ``'folder'`` / ``'folder:N'`` (the ``N``-th folder
            above the file, default 1), or a regular expression searched in
            the file name whose group 1 (or whole match) is the key.

    Returns:
        list[str]: One key per image.

    Raises:
        DataError: The expression is invalid, misses some file names, or
            takes over :data:`NAME_PATTERN_TIMEOUT` s on one.

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
                raise DataError(f'group_by={group_by}: no folder {up} '
                                'level(s) above the file', path)
            keys.append('/'.join(parts[:-up]))
        return keys
    pattern = compile_name_pattern(group_by)
    matches = search_file_names(pattern, img_paths)
    missed = [p for p, m in zip(img_paths, matches) if m is None]
    if missed:
        from rock_plugin.utils.text import printable
        names = ', '.join(printable(osp.basename(p)) for p in missed[:3])
        what = ('matches none of the' if len(missed) == len(img_paths) else
                f'does not match {len(missed)} of the')
        raise DataError(
            f'group_by={group_by!r} {what} {len(img_paths)} file names '
            f'(e.g. {names}); the expression is searched in the file name '
            r"and group 1 is the sample key, e.g. '^(.*)_\d+\.jpg$'")
    return [m.group(1) if pattern.groups else m.group(0) for m in matches]


def assign_folds(labels: Sequence[int], folds: int, seed: Optional[int] = 0,
                 groups: Optional[Sequence[str]] = None,
                 class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """The validation fold of every sample: sklearn's seeded
    ``StratifiedKFold`` (``StratifiedGroupKFold`` with ``groups``).

    Args:
        labels (Sequence[int]): Class of every sample.
        folds (int): Number of folds, at least 2.
        seed (int, optional): Shuffle seed.
        groups (Sequence[str], optional): Group key of every sample.
        class_names (Sequence[str], optional): For error messages.

    Returns:
        np.ndarray: ``(N,)`` fold index in ``[0, folds)``.

    Raises:
        DataError: A class has fewer images (or groups) than folds.

    Example:
        >>> assign_folds([0, 0, 1, 1], 2, seed=0).tolist()
        [1, 0, 0, 1]
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    if folds < 2:
        raise ValueError(f'folds must be at least 2, got {folds}')
    labels = np.asarray(labels)
    unit = 'images' if groups is None else 'groups'
    for cls in np.unique(labels):
        members = labels == cls
        count = (int(members.sum()) if groups is None else
                 len({g for g, m in zip(groups, members) if m}))
        if count < folds:
            name = str(cls) if class_names is None else class_names[cls]
            raise DataError(
                f'class {name!r} has {count} {unit}, fewer than folds='
                f'{folds}: some fold would have none of it to validate. Use '
                f'folds={max(2, count)} or fewer, or add {unit}')
    seed = None if seed is None else int(seed) % 2**32
    kfold = StratifiedKFold if groups is None else StratifiedGroupKFold
    splits = kfold(folds, shuffle=True, random_state=seed).split(
        labels, labels, None if groups is None else list(groups))
    order = np.zeros(len(labels), dtype=np.int64)
    for k, (_, val) in enumerate(splits):
        order[val] = k
    return order


def write_fold_files(out_dir: str, img_paths: Sequence[str],
                     labels: Sequence[int], fold_ids: Sequence[int],
                     class_names: Sequence[str],
                     groups: Optional[Sequence[str]] = None
                     ) -> List[Tuple[str, str]]:
    """Write ``out_dir/folds.csv`` (a row per image: path, label, class,
    group key, fold from :func:`assign_folds`) and fold ``k``'s
    ``fold_<k>/train.txt`` / ``val.txt`` (absolute paths, so a fold reruns
    on its own); returns the ``(train.txt, val.txt)`` pairs."""
    fold_ids = np.asarray(fold_ids)
    paths = [osp.abspath(p) for p in img_paths]
    atomic_write_csv(osp.join(out_dir, 'folds.csv'), [FOLDS_CSV_COLUMNS] + [
        [path, int(labels[i]), class_names[labels[i]],
         '' if groups is None else groups[i], int(fold_ids[i])]
        for i, path in enumerate(paths)])
    files = []
    for k in range(int(fold_ids.max()) + 1):
        pair = (osp.join(out_dir, f'fold_{k}', 'train.txt'),
                osp.join(out_dir, f'fold_{k}', 'val.txt'))
        for path, keep in zip(pair, (fold_ids != k, fold_ids == k)):
            with atomic_write(path, encoding='utf-8') as f:
                f.writelines(format_annotation_line(paths[i], labels[i]) +
                             '\n' for i in np.flatnonzero(keep))
        files.append(pair)
    return files


def read_folds_csv(path: str) -> List[dict]:
    """Rows of a ``folds.csv`` written by :func:`write_fold_files`."""
    with open(path, newline='', encoding='utf-8') as f:
        # undo the writer's quoting of formula-like cells (a class '=x')
        rows = [{from_csv_cell(k): from_csv_cell(v) for k, v in row.items()}
                for row in csv.DictReader(f)]
    for row in rows:
        row['label'], row['fold'] = int(row['label']), int(row['fold'])
    return rows
