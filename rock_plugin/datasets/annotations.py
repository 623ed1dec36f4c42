"""Readers and writers for the original project's annotation formats.

The original rock_identification / Awesome-Backbones trainer keeps its data as
two plain-text formats that no OpenMMLab parser reads as they are:

* annotation files (``train.txt``, ``test.txt``): ``<image path> <label>`` a
  line; the label is the *last* whitespace-separated field so paths may hold
  spaces, and Windows users write ``\\`` separators;
* a classes file (``annotations.txt``): ``<name> <index>`` a line, or just one
  name a line in label order.

mmpretrain's ``CustomDataset`` splits a line on the first space and reads the
classes file as one name a line, so both break on these files; hence the small
hand-written parsers here. Every error names the file and the line.
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.fileio import get_text

from rock_plugin.utils.errors import DataError  # noqa: F401  (re-exported)
from rock_plugin.utils.image_files import (  # noqa: F401  (re-exported)
    IMG_EXTENSIONS, scan_class_folders)


def _read_lines(path: str) -> List[str]:
    if not osp.isfile(path):
        raise DataError('file not found', path)
    try:
        text = get_text(path, encoding='utf-8-sig')
    except UnicodeDecodeError as exc:
        raise DataError(f'not UTF-8 text ({exc.reason} at byte {exc.start})',
                        path) from None
    return text.splitlines()


def normalize_path(path: str) -> str:
    """Use forward slashes whatever OS wrote the annotation file.

    Example:
        >>> normalize_path('train\\\\Chert\\\\a b.jpg')
        'train/Chert/a b.jpg'
    """
    return path.replace('\\', '/')


def parse_classes_text(lines: Sequence[str], path: str = '<classes>') -> List[str]:
    """Parse the lines of a classes file into names in label order.

    Two layouts are accepted (not mixed): ``<name> <index>`` a line (the
    original ``annotations.txt``; the index is the last field so names may
    hold spaces) or one name a line. Blank lines are skipped.

    Args:
        lines (Sequence[str]): The file's lines.
        path (str): The file name used in error messages.

    Returns:
        list[str]: Class names, ``names[i]`` being label ``i``.

    Example:
        >>> parse_classes_text(['Chert 1', 'Bauxite 0'])
        ['Bauxite', 'Chert']
    """
    entries: List[Tuple[int, str, Optional[int]]] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        fields = line.rsplit(None, 1)
        index = None
        if len(fields) == 2 and _is_int(fields[1]):
            name, index = fields[0].strip(), int(fields[1])
        elif _is_int(line):
            raise DataError(f'empty class name (only an index {line!r})', path,
                            lineno)
        else:
            name = line
        entries.append((lineno, name, index))
    if not entries:
        raise DataError('the classes file lists no class names', path)
    indexed = [e for e in entries if e[2] is not None]
    if indexed and len(indexed) != len(entries):
        lineno = next(e[0] for e in entries if e[2] is None)
        raise DataError(
            'mixes "<name> <index>" lines with bare names; use one layout',
            path, lineno)
    seen = {}
    for lineno, name, _ in entries:
        if name in seen:
            raise DataError(
                f'duplicate class name {name!r} (first on line {seen[name]})',
                path, lineno)
        seen[name] = lineno
    if not indexed:
        return [name for _, name, _ in entries]
    by_index = {}
    for lineno, name, index in indexed:
        if index in by_index:
            raise DataError(
                f'duplicate class index {index} (first on line '
                f'{by_index[index][0]})', path, lineno)
        by_index[index] = (lineno, name)
    expected = list(range(len(indexed)))
    if sorted(by_index) != expected:
        missing = sorted(set(expected) - set(by_index))
        extra = sorted(set(by_index) - set(expected))
        raise DataError(
            f'class indices must be 0..{len(indexed) - 1}; missing {missing}, '
            f'out of range {extra}', path)
    return [by_index[i][1] for i in expected]


def load_classes(path: str) -> List[str]:
    """Read a classes file (see :func:`parse_classes_text`).

    Args:
        path (str): Path of the classes file.

    Returns:
        list[str]: Class names in label order.
    """
    return parse_classes_text(_read_lines(path), path)


def parse_annotation_text(lines: Sequence[str],
                          path: str = '<annotations>',
                          num_classes: Optional[int] = None
                          ) -> List[Tuple[str, int, int]]:
    """Parse ``<image path> <label>`` lines.

    Args:
        lines (Sequence[str]): The file's lines. Blank lines and lines
            starting with ``#`` are skipped.
        path (str): The file name used in error messages.
        num_classes (int, optional): When given, labels must be below it.

    Returns:
        list[tuple]: ``(image path with forward slashes, label, line number)``.

    Example:
        >>> parse_annotation_text(['a dir\\\\x y.jpg 3'])
        [('a dir/x y.jpg', 3, 1)]
    """
    samples = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.rsplit(None, 1)
        if len(fields) != 2:
            raise DataError(
                f'expected "<image path> <label index>", got {line!r}', path,
                lineno)
        img, label = fields
        if not _is_int(label):
            raise DataError(
                f'label {label!r} is not an integer (expected "<image path> '
                '<label index>")', path, lineno)
        label = int(label)
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise DataError(
                f'label {label} out of range: there are {num_classes} '
                f'classes (labels 0..{(num_classes or 1) - 1})'
                if num_classes is not None else f'label {label} is negative',
                path, lineno)
        samples.append((normalize_path(img.strip()), label, lineno))
    return samples


def load_annotations(path: str, num_classes: Optional[int] = None
                     ) -> List[Tuple[str, int, int]]:
    """Read an annotation file (see :func:`parse_annotation_text`)."""
    return parse_annotation_text(_read_lines(path), path, num_classes)


def format_annotation_line(path: str, label: int) -> str:
    """One line of an annotation file, with forward slashes."""
    return f'{normalize_path(path)} {int(label)}'


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
