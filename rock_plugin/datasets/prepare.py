"""Turn a folder of rock photos into a checked, stratified train/test split.

:func:`prepare_dataset` writes the original project's files (``train.txt``,
``test.txt``: ``<path> <label>`` lines; ``annotations.txt``: ``<name>
<index>`` lines) plus ``classes.txt`` (one name a line), after checking every
image with :func:`~rock_plugin.datasets.checks.check_images` and leaving out
what cannot be used. :func:`check_annotation_files` runs the same checks on
annotation files that already exist.
"""
import contextlib
import os
import os.path as osp
import shutil
from typing import List, Optional, Sequence, Tuple, Union

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.errors import DataError
from .annotations import (format_annotation_line, load_annotations,
                          load_classes, normalize_path)
from .checks import DatasetReport, check_class_tree, check_images
from .split import num_folds, stratified_fold_split

MODES = ('annotate', 'copy', 'symlink')
PARTS = ('train', 'test')


def prepare_dataset(src: str,
                    out_dir: str,
                    test_ratio: float = 0.2,
                    seed: int = 0,
                    mode: str = 'annotate',
                    strict: bool = False,
                    min_size: int = 32,
                    min_per_class: int = 2,
                    fold: int = 0,
                    overwrite: bool = False,
                    workers: Optional[int] = None
                    ) -> Tuple[DatasetReport, List[str]]:
    """Check a folder-per-class dataset and write a train/test split of it.

    Unusable files (missing, not an image, truncated, corrupt) are left out,
    so are all but the first copy of a duplicate and every copy of an image
    found in two classes (its class is unknown). Tiny images and small
    classes are only reported. The split is
    :func:`~rock_plugin.datasets.split.stratified_fold_split` of the kept
    images: the same ``seed`` and ``fold`` always give the same files.

    Files written in ``out_dir`` (each atomically, so an interrupted run
    never leaves a half-written one):

    * ``train.txt``, ``test.txt``: ``<path> <label>`` lines, forward slashes,
      paths relative to ``out_dir``. ``mode='annotate'`` points back at the
      source images (``../photos/Chert/1.jpg``; absolute when no relative path
      exists, e.g. another Windows drive); ``'copy'`` and ``'symlink'`` put
      the images in ``out_dir/train/<class>/`` and ``out_dir/test/<class>/``.
    * ``annotations.txt``: ``<name> <index>`` lines, the original format.
    * ``classes.txt``: one name a line.

    Args:
        src (str): Folder with one sub-folder of images per class.
        out_dir (str): Where to write; created if needed.
        test_ratio (float): Fraction of each class in the test part.
        seed (int): Seed of the split.
        mode (str): ``'annotate'``, ``'copy'`` or ``'symlink'``.
        strict (bool): Raise :class:`DataError` listing the problems, before
            anything is written, when any problem is found.
        min_size (int): Shorter image sides below it are reported.
        min_per_class (int): Classes with fewer usable images are reported.
        fold (int): Which of the ``int(1 / test_ratio)`` folds is the test
            part; the folds of one seed never overlap.
        overwrite (bool): In copy/symlink mode, replace ``out_dir/train`` and
            ``out_dir/test`` when they already hold files (refused otherwise,
            so that old images never mix with the new split).
        workers (int, optional): Threads used to decode the images.

    Returns:
        tuple[DatasetReport, list[str]]: The report (its ``split_counts`` hold
        the per-class train and test counts) and the files written.

    Example:
        >>> report, written = prepare_dataset('photos', 'data/rocks',
        ...                                   test_ratio=0.2, seed=0)
        >>> ds = RockDataset(data_root='data/rocks', ann_file='train.txt',
        ...                  classes='annotations.txt')
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    folds = num_folds(test_ratio)
    if not 0 <= fold < folds:
        raise ValueError(f'fold must be in [0, {folds - 1}] for test ratio '
                         f'{test_ratio}, got {fold}')
    # Real paths: the OS resolves '..' after following links, so a relative
    # path computed on them is the one that works.
    src_abs, out_abs = osp.realpath(src), osp.realpath(out_dir)
    if _inside(out_abs, src_abs) and out_abs != src_abs:
        raise DataError(
            f'the output folder {out_dir} is inside the source folder, where '
            'it would be read as a class; choose a folder outside it', src)
    if mode != 'annotate':
        _check_no_overlap(src_abs, out_abs)

    report = check_class_tree(src, min_size=min_size,
                              min_per_class=min_per_class, workers=workers)
    classes = report.class_names
    samples = [(info.path, info.label) for info in report.images]
    if strict and not report.ok:
        raise strict_error(report, out_dir)

    kept = [i for i in range(len(samples)) if i not in report.excluded]
    if not kept:
        raise DataError('no usable images to split', src)
    for i in kept:
        if any(c in samples[i][0] for c in '\r\n'):
            # A line break in a file name would split its annotation line.
            raise DataError('file name holds a line break; rename it',
                            osp.join(src, samples[i][0]))
    train_pos, test_pos = stratified_fold_split(
        [samples[i][1] for i in kept], test_ratio, fold, seed)
    parts = {'train': [kept[p] for p in train_pos],
             'test': [kept[p] for p in test_pos]}
    report.split_counts = {
        part: [sum(1 for i in idx if samples[i][1] == lbl)
               for lbl in range(len(classes))]
        for part, idx in parts.items()}

    if mode != 'annotate':
        _clear_parts(out_abs, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    lines = {}
    for part, idx in parts.items():
        lines[part] = []
        for i in idx:
            rel, label = samples[i]
            source = osp.join(src_abs, rel)
            if mode == 'annotate':
                path = _relative_or_absolute(source, out_abs)
            else:
                path = f'{part}/{rel}'
                dest = osp.join(out_dir, path)
                _place(source, dest, mode)
                written.append(dest)
            if path.startswith('#'):
                # The parser skips lines starting with '#' as comments.
                path = './' + path
            lines[part].append(format_annotation_line(path, label))
    for part in PARTS:
        written.append(_write_lines(osp.join(out_dir, f'{part}.txt'),
                                    lines[part]))
    written.append(_write_lines(
        osp.join(out_dir, 'annotations.txt'),
        [f'{name} {idx}' for idx, name in enumerate(classes)]))
    written.append(_write_lines(osp.join(out_dir, 'classes.txt'), classes))
    return report, written


def strict_error(report: DatasetReport, out_dir: Optional[str] = None
                 ) -> DataError:
    """The error raised in strict mode; it keeps the report as ``.report``.

    Args:
        report (DatasetReport): A report with problems.
        out_dir (str, optional): Named as left untouched.

    Returns:
        DataError: Its message lists the problems.
    """
    counts = ', '.join(f'{k} {c}' for k, c in report.problem_counts().items())
    where = f' in {out_dir}' if out_dir else ''
    exc = DataError(
        f'strict mode: {len(report.problems)} problem(s) found ({counts}); '
        f'nothing was written{where}\n' + report.format_problems())
    exc.report = report
    return exc


def check_annotation_files(data_root: str,
                           ann_files: Sequence[str],
                           classes: Union[str, Sequence[str]]
                           = 'annotations.txt',
                           data_prefix: str = '',
                           min_size: int = 32,
                           min_per_class: int = 2,
                           workers: Optional[int] = None) -> DatasetReport:
    """Run the image checks on existing annotation files.

    All files are checked together, so an image listed in both
    ``train.txt`` and ``test.txt`` (or the same photo under two names) is
    reported as a duplicate that leaks one part into the other. A listed
    image that does not exist is a ``missing`` problem; a malformed line
    raises :class:`DataError` naming its file and line.

    Args:
        data_root (str): Root the files and images are relative to, as in
            :class:`~rock_plugin.datasets.RockDataset`.
        ann_files (Sequence[str]): Annotation files (relative to
            ``data_root`` or to the working folder, or absolute).
        classes (str | Sequence[str]): Classes file (same lookup) or names.
        data_prefix (str): Sub-folder of ``data_root`` image paths are
            relative to.
        min_size (int): Shorter image sides below it are reported.
        min_per_class (int): Classes with fewer usable images (all files
            together) are reported.
        workers (int, optional): Threads used to decode the images.

    Returns:
        DatasetReport: With one ``split_counts`` column per file when there
        are several.

    Example:
        >>> report = check_annotation_files(
        ...     'data/rocks', ['train.txt', 'test.txt'], 'annotations.txt')
        >>> print(report.format_table(), report.format_problems())
    """
    if isinstance(classes, str):
        class_names = load_classes(_find(data_root, classes, 'classes file'))
    else:
        class_names = [str(c) for c in classes]
    if not ann_files:
        raise ValueError('no annotation file given')
    samples, per_file = [], {}
    for ann in ann_files:
        path = _find(data_root, ann, 'annotation file')
        name = normalize_path(ann)
        entries = load_annotations(path, num_classes=len(class_names))
        samples.extend((img, label, f'{name}:{lineno}')
                       for img, label, lineno in entries)
        counts = [0] * len(class_names)
        for _, label, _ in entries:
            counts[label] += 1
        per_file[name] = counts
    root = osp.join(data_root, data_prefix) if data_prefix else data_root
    report = check_images(samples, root=root,
                          min_size=min_size, min_per_class=min_per_class,
                          class_names=class_names, workers=workers)
    if len(per_file) > 1:
        report.split_counts = per_file
    return report


def _find(data_root: str, path: str, what: str) -> str:
    """``path`` relative to ``data_root`` or, failing that, as given."""
    if osp.isabs(path):
        candidates = [path]
    else:
        candidates = [osp.join(data_root, path), path]
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    raise DataError(f'{what} not found', candidates[0])


def _relative_or_absolute(path: str, start: str) -> str:
    try:
        rel = osp.relpath(path, start)
    except ValueError:  # Windows: no relative path between two drives.
        rel = path
    return normalize_path(rel)


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_no_overlap(src: str, out_dir: str) -> None:
    """Copying into the source tree (or clearing it) would damage it."""
    for part in PARTS:
        target = osp.join(out_dir, part)
        if _inside(target, src) or _inside(src, target):
            raise DataError(
                f'the output folder {target} overlaps the source folder; '
                'choose an output folder outside the source', src)


def _clear_parts(out_dir: str, overwrite: bool) -> None:
    for part in PARTS:
        target = osp.join(out_dir, part)
        if not osp.lexists(target):
            continue
        if osp.isdir(target) and not osp.islink(target) and \
                not any(files for _, _, files in os.walk(target)):
            continue
        if not overwrite:
            raise DataError(
                'already holds files; old images would mix with the new '
                'split: remove it, choose another output folder or overwrite '
                '(--overwrite)', target)
        if osp.isdir(target) and not osp.islink(target):
            shutil.rmtree(target)
        else:
            os.unlink(target)


def _place(source: str, dest: str, mode: str) -> None:
    """Copy or link ``source`` to ``dest`` atomically."""
    if mode == 'copy':
        with open(source, 'rb') as fin, atomic_write(dest, 'wb') as fout:
            shutil.copyfileobj(fin, fout)
        return
    folder = osp.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    # Relative, like annotate mode's paths: moving both trees keeps it valid.
    # Native separators here: a link target is not an annotation line.
    try:
        target = osp.relpath(source, folder)
    except ValueError:  # Windows: another drive.
        target = source
    tmp = osp.join(folder, f'.{osp.basename(dest)}.{os.getpid()}.tmp')
    try:
        os.symlink(target, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise DataError(f'cannot create a symbolic link ({exc}); use '
                        "mode='copy' (--mode copy) instead", dest) from None


def _write_lines(path: str, lines: Sequence[str]) -> str:
    # newline='\n': the same bytes on every OS, whatever reads them.
    with atomic_write(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write(''.join(f'{line}\n' for line in lines))
    return path
