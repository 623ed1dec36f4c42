"""Check a folder of rock photos and write a stratified train/test split in
the original project's formats; or check existing annotation files.

The work of ``tools/dataset/prepare_dataset.py`` and, for annotation files,
``tools/dataset/check_dataset.py``; offline only, so not in the package.
"""
import contextlib
import os
import os.path as osp
import shutil
from collections import Counter
from typing import List, Optional, Sequence, Tuple, Union

from rock_plugin.datasets.annotations import (format_annotation_line,
                                              load_annotations, load_classes,
                                              normalize_path)
from rock_plugin.datasets.split import num_folds, stratified_fold_split
from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.errors import DataError

# A sibling module: tools/dataset/ is on sys.path when its tools run.
from _checks import DatasetReport, check_class_tree, check_images

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

    Excluded files (see :func:`check_images`) are left out, the rest split
    by :func:`stratified_fold_split` into ``train.txt`` / ``test.txt``
    (paths relative to ``out_dir``: the sources for ``'annotate'``, else
    copies in ``out_dir/<part>/<class>/``), with ``annotations.txt`` and
    ``classes.txt``; every file is written atomically.

    Args:
        src (str): Folder with one sub-folder of images per class.
        out_dir (str): Where to write; created if needed.
        test_ratio (float): Fraction of each class in the test part.
        seed (int): Seed of the split.
        mode (str): ``'annotate'``, ``'copy'`` or ``'symlink'``.
        strict (bool): On any problem, raise before writing anything.
        min_size (int): Shorter image sides below it are reported.
        min_per_class (int): Classes with fewer usable images are reported.
        fold (int): Which of the ``int(1 / test_ratio)`` folds is tested.
        overwrite (bool): Replace non-empty ``train``/``test`` image folders.
        workers (int, optional): Threads used to decode the images.

    Returns:
        tuple[DatasetReport, list[str]]: The report (``split_counts`` holds
        the per-class train and test counts) and the files written.

    Example:
        >>> report, written = prepare_dataset('photos', 'data/rocks')
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    folds = num_folds(test_ratio)
    if not 0 <= fold < folds:
        raise ValueError(f'fold must be in [0, {folds - 1}] for test ratio '
                         f'{test_ratio}, got {fold}')
    # Real paths: the OS resolves '..' after links, so relpaths need them.
    src_abs, out_abs = osp.realpath(src), osp.realpath(out_dir)
    if _inside(out_abs, src_abs) and out_abs != src_abs:
        raise DataError(
            f'the output folder {out_dir} is inside the source folder, where '
            'it would be read as a class; choose a folder outside it', src)
    # Copying into the source tree (or clearing it) would damage it.
    for part in PARTS if mode != 'annotate' else ():
        target = osp.join(out_abs, part)
        if _inside(target, src_abs) or _inside(src_abs, target):
            raise DataError(
                f'the output folder {target} overlaps the source folder; '
                'choose an output folder outside the source', src)
    report = check_class_tree(src, min_size=min_size,
                              min_per_class=min_per_class, workers=workers)
    classes = report.class_names
    samples = [(info.path, info.label) for info in report.images]
    if strict and not report.ok:
        counts = ', '.join(f'{k} {c}'
                           for k, c in report.problem_counts().items())
        where = f' in {out_dir}' if out_dir else ''
        exc = DataError(
            f'strict mode: {len(report.problems)} problem(s) found '
            f'({counts}); nothing was written{where}\n'
            + report.format_problems())
        exc.report = report
        raise exc
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
    # Old images must never mix with the new split.
    for part in PARTS if mode != 'annotate' else ():
        target = osp.join(out_abs, part)
        real_dir = osp.isdir(target) and not osp.islink(target)
        if not osp.lexists(target) or (real_dir and not any(
                files for _, _, files in os.walk(target))):
            continue
        if not overwrite:
            raise DataError(
                'already holds files; old images would mix with the new '
                'split: remove it, choose another output folder or overwrite '
                '(--overwrite)', target)
        if real_dir:
            shutil.rmtree(target)
        else:
            os.unlink(target)
    written, texts = [], {}
    for part, idx in parts.items():
        texts[f'{part}.txt'] = lines = []
        for rel, label in (samples[i] for i in idx):
            source = osp.join(src_abs, rel)
            if mode == 'annotate':
                path = normalize_path(_relpath(source, out_abs))
            else:
                path = f'{part}/{rel}'
                written.append(_place(source, osp.join(out_dir, path), mode))
            if path.startswith('#'):
                # The parser skips lines starting with '#' as comments.
                path = './' + path
            lines.append(format_annotation_line(path, label))
    texts['annotations.txt'] = [f'{name} {i}'
                                for i, name in enumerate(classes)]
    texts['classes.txt'] = classes
    for name, lines in texts.items():
        path = osp.join(out_dir, name)
        # newline='\n': the same bytes on every OS, whatever reads them.
        with atomic_write(path, 'w', encoding='utf-8', newline='\n') as f:
            f.write(''.join(f'{line}\n' for line in lines))
        written.append(path)
    return report, written


def check_annotation_files(data_root: str,
                           ann_files: Sequence[str],
                           classes: Union[str, Sequence[str]]
                           = 'annotations.txt',
                           data_prefix: str = '',
                           min_size: int = 32,
                           min_per_class: int = 2,
                           workers: Optional[int] = None) -> DatasetReport:
    """Run the image checks on existing annotation files, all together, so
    an image in both ``train.txt`` and ``test.txt`` is a leaking duplicate.

    Args:
        data_root (str): Root the files and images are relative to.
        ann_files (Sequence[str]): Relative to ``data_root`` or cwd.
        classes (str | Sequence[str]): Classes file (same lookup) or names.
        data_prefix (str): Sub-folder of ``data_root`` holding the images.
        min_size (int): Shorter image sides below it are reported.
        min_per_class (int): Classes with fewer usable images are reported.
        workers (int, optional): Threads used to decode the images.

    Returns:
        DatasetReport: With a ``split_counts`` column per file if several.
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
        found = Counter(label for _, label, _ in entries)
        per_file[name] = [found[i] for i in range(len(class_names))]
    root = osp.join(data_root, data_prefix) if data_prefix else data_root
    report = check_images(samples, root=root,
                          min_size=min_size, min_per_class=min_per_class,
                          class_names=class_names, workers=workers)
    if len(per_file) > 1:
        report.split_counts = per_file
    return report


def _find(data_root: str, path: str, what: str) -> str:
    """``path`` relative to ``data_root`` or, failing that, as given."""
    for candidate in (osp.join(data_root, path), path):  # same if absolute
        if osp.isfile(candidate):
            return candidate
    raise DataError(f'{what} not found', osp.join(data_root, path))


def _relpath(path: str, start: str) -> str:
    try:
        return osp.relpath(path, start)
    except ValueError:  # Windows: no relative path between two drives.
        return path


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _place(source: str, dest: str, mode: str) -> str:
    """Copy or link ``source`` to ``dest`` atomically; returns ``dest``."""
    if mode == 'copy':
        with open(source, 'rb') as fin, atomic_write(dest, 'wb') as fout:
            shutil.copyfileobj(fin, fout)
        return dest
    folder = osp.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(dest)}.{os.getpid()}.tmp')
    try:
        # Relative, so moving both trees keeps it valid.
        os.symlink(_relpath(source, folder), tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise DataError(f'cannot create a symbolic link ({exc}); use '
                        "mode='copy' (--mode copy) instead", dest) from None
    return dest
