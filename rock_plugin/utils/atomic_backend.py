"""``AtomicLocalBackend``: mmengine's local file backend with atomic writes.

Registered with mmengine's file-backend registry under a name of its own,
``'rock_atomic_local'``; nothing of mmengine's is replaced. A writer opts in
with ``backend_args=dict(backend='rock_atomic_local')``, as
:class:`~rock_plugin.hooks.RockCheckpointHook` does for checkpoints.
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from .atomic_io import atomic_write

ATOMIC_LOCAL_BACKEND = 'rock_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` replace files atomically.

    mmengine's ``LocalBackend.put`` opens the destination with ``'wb'``: a
    process killed (or a disk that fills) mid-write leaves a truncated
    checkpoint under its real name, and the previous one is already gone.
    Here the bytes go to a temporary file beside it, which is renamed over the
    destination only once complete (:func:`~rock_plugin.utils.atomic_io.
    atomic_write`).

    Example:
        >>> from mmengine.fileio import get_file_backend
        >>> backend = get_file_backend(
        ...     'work_dirs/x', backend_args=dict(backend='rock_atomic_local'))
        >>> backend.put(b'...', 'work_dirs/x/epoch_1.pth')
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically.

        Raises:
            OSError: Naming the file; the previous file, if any, is kept.
        """
        try:
            with atomic_write(str(filepath), 'wb') as f:
                f.write(obj)
        except OSError as exc:
            raise OSError(
                exc.errno, f'could not write {filepath} '
                f'({exc.strerror or exc}); nothing was overwritten: the '
                'previous file, if any, is kept') from None

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (see :meth:`put`)."""
        self.put(obj.encode(encoding), filepath)


# A new name in mmengine's backend registry, never one of mmengine's own:
# re-registering it (a module reload) replaces only this class.
register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, force=True)
