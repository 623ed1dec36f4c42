"""Whether a path lies in a folder, and a recorded path as a file of the
folder a run works in (copied and moved work dirs use their own files)."""
import os.path as osp
from typing import Callable, Optional


def path_inside(path: str, folder: str) -> bool:
    """Whether the file or folder ``path`` lies inside ``folder``, by real
    paths: links and ``..`` of the folders on the way are resolved, not
    the entry itself (removing a link removes the link, not its target).
    Remote (``scheme://``) paths compare by name.

    Args:
        path (str): A file or folder (need not exist).
        folder (str): A work dir or checkpoint folder.

    Returns:
        bool: True when ``path`` is below ``folder`` (not ``folder`` itself).

    Example:
        >>> path_inside('work_dirs/a/epoch_1.pth', 'work_dirs/a')
        True
        >>> path_inside('work_dirs/a/../b/epoch_1.pth', 'work_dirs/a')
        False
    """
    path, folder = str(path), str(folder)
    if '://' in path or '://' in folder:
        parts = path.split('/')
        return '..' not in parts and path.startswith(folder.rstrip('/') + '/')
    path = osp.abspath(path)
    entry = osp.join(osp.realpath(osp.dirname(path)), osp.basename(path))
    root = osp.realpath(folder)
    return entry != root and osp.commonpath([entry, root]) == root


def resolve_in_dir(path: Optional[str], folder: str,
                   exists: Callable[[str], bool] = osp.isfile
                   ) -> Optional[str]:
    """``path`` (read from a checkpoint or ``last_checkpoint``) as a file of
    ``folder``: itself when inside, else the file of the same name in
    ``folder`` when ``exists``, else None. A copied or moved work dir then
    uses its own files, never those of the dir it came from.

    Args:
        path (str, optional): The recorded path (absolute, or relative to
            the current directory, as mmengine writes it).
        folder (str): The run's work dir or checkpoint folder.
        exists (Callable[[str], bool]): The test for the same-named file
            (a file backend's ``exists`` for remote storage).

    Returns:
        str | None: A path inside ``folder``, or None.

    Example:
        >>> resolve_in_dir('/old/run/epoch_2.pth', 'copy')  # copy has one
        'copy/epoch_2.pth'
    """
    if not path:
        return None
    if path_inside(path, folder):
        return path
    here = osp.join(str(folder), osp.basename(str(path).rstrip('/')))
    return here if exists(here) else None
