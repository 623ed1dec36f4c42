"""Parsers for the original project's formats, which mmpretrain misreads:
``<image path> <label>`` lines (paths may hold spaces and ``\\``) and
``<name> <index>`` classes files. Errors name the file and line."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.fileio import get_text

from rock_plugin.utils.errors import DataError


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
    """Use forward slashes whatever OS wrote the annotation file."""
    return path.replace('\\', '/')


def parse_classes_text(lines: Sequence[str],
                       path: str = '<classes>') -> List[str]:
    """Parse a classes file's lines (``<name> <index>`` lines or one name a
    line, not mixed; blank lines skipped) into names in label order.

    Args:
        lines (Sequence[str]): The file's lines.
        path (str): The file name used in error messages.

    Returns:
        list[str]: Class names, ``names[i]`` being label ``i``.
    """
    entries = []  # (line number, name, index or None)
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if _is_int(line):
            raise DataError(f'empty class name (only an index {line!r})', path,
                            lineno)
        fields = line.rsplit(None, 1)
        if len(fields) == 2 and _is_int(fields[1]):
            entries.append((lineno, fields[0].strip(), int(fields[1])))
        else:
            entries.append((lineno, line, None))
    if not entries:
        raise DataError('the classes file lists no class names', path)
    bare = [lineno for lineno, _, index in entries if index is None]
    if bare and len(bare) != len(entries):
        raise DataError(
            'mixes "<name> <index>" lines with bare names; use one layout',
            path, bare[0])
    # Names always, indices when given: each may appear once.
    for col, what in ((1, 'name'), (2, 'index'))[:1 if bare else 2]:
        seen = {}
        for entry in entries:
            if entry[col] in seen:
                raise DataError(
                    f'duplicate class {what} {entry[col]!r} (first on line '
                    f'{seen[entry[col]]})', path, entry[0])
            seen[entry[col]] = entry[0]
    if bare:
        return [name for _, name, _ in entries]
    by_index = {index: name for _, name, index in entries}
    expected = list(range(len(entries)))
    if sorted(by_index) != expected:
        missing = sorted(set(expected) - set(by_index))
        extra = sorted(set(by_index) - set(expected))
        raise DataError(
            f'class indices must be 0..{len(entries) - 1}; missing {missing}, '
            f'out of range {extra}', path)
    return [by_index[i] for i in expected]


def load_classes(path: str) -> List[str]:
    """Read a classes file (see :func:`parse_classes_text`)."""
    return parse_classes_text(_read_lines(path), path)


def parse_annotation_text(lines: Sequence[str],
                          path: str = '<annotations>',
                          num_classes: Optional[int] = None
                          ) -> List[Tuple[str, int, int]]:
    """Parse ``<image path> <label>`` lines (blank and ``#`` lines skipped).

    Args:
        lines (Sequence[str]): The file's lines.
        path (str): The file name used in error messages.
        num_classes (int, optional): When given, labels must be below it.

    Returns:
        list[tuple]: ``(image path with forward slashes, label, line number)``.
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
