"""Atomic file writes: a kill mid-write never leaves a truncated file."""
import contextlib
import csv
import json
import os
import os.path as osp
import shutil
import tempfile
import uuid
from typing import Iterable, Iterator, IO, Sequence

from .text import csv_cell


def _umask() -> int:
    # os.umask is read by setting it, racing other threads (figures are
    # written from a background thread); Linux shows it in /proc.
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w', **open_kwargs) -> Iterator[IO]:
    """Write to a temporary file beside ``path``, renamed over it on success:
    readers, and a process killed at any moment, see the old file or the
    complete new one. The mode is ``open``'s (``0o666`` less the umask), not
    ``mkstemp``'s ``0o600``, so others on a shared server can read results.

    Args:
        path (str): Destination file.
        mode (str): ``'w'`` or ``'wb'``.
        **open_kwargs: Passed to :func:`open` (e.g. ``newline=''``).

    Yields:
        file: The temporary file to write to.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.',
                               suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_csv(path: str, rows: Iterable[Sequence]) -> str:
    """Write ``rows`` as a UTF-8 CSV file atomically, every cell through
    :func:`~rock_plugin.utils.text.csv_cell`: a class named ``=SUM(A1)``
    is text, not a formula, in a spreadsheet. Readers of our own CSV files
    undo it with :func:`~rock_plugin.utils.text.from_csv_cell`.

    Args:
        path (str): Destination file.
        rows (Iterable[Sequence]): The rows, header first if any.

    Returns:
        str: ``path``.

    Example:
        >>> atomic_write_csv('per_class.csv', [['class', 'f1'], ['=x', 0.5]])
        'per_class.csv'
    """
    with atomic_write(path, newline='', encoding='utf-8') as f:
        csv.writer(f).writerows([csv_cell(cell) for cell in row]
                                for row in rows)
    return path


def atomic_write_json(path: str, obj, indent: int = 2) -> str:
    """Write ``obj`` as a UTF-8 JSON file atomically; returns ``path``."""
    with atomic_write(path, encoding='utf-8') as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write('\n')
    return path


def atomic_save_figure(fig, path: str, **savefig_kwargs) -> None:
    """Save a matplotlib figure atomically (see :func:`atomic_write`)."""
    fmt = osp.splitext(path)[1].lstrip('.') or 'png'
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format=fmt, **savefig_kwargs)


def atomic_link(target: str, dest: str) -> str:
    """Make ``dest`` the same file as ``target``, replacing it atomically:
    a hard link (no space; it outlives the removal of ``target``), else a
    copy.

    Args:
        target (str): An existing file.
        dest (str): The path that is to name it.

    Returns:
        str: ``dest``.

    Example:
        >>> atomic_link('work/epoch_3.pth', 'work/last.pth')
        'work/last.pth'
    """
    # renamed into place, so readers see the old file or the new one
    tmp = osp.join(osp.dirname(dest) or '.',
                   f'.{osp.basename(dest)}.{uuid.uuid4().hex}.tmp')
    try:
        os.link(target, tmp)
        os.replace(tmp, dest)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with open(target, 'rb') as src, atomic_write(dest, 'wb') as dst:
            shutil.copyfileobj(src, dst)
    return dest
