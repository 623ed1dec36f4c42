"""mmengine's local file backend with atomic writes, registered under its own
name ``'rock_atomic_local'`` (nothing of mmengine's is replaced)."""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from .atomic_io import atomic_write

ATOMIC_LOCAL_BACKEND = 'rock_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` replace files atomically.

    mmengine's ``put`` opens the destination with ``'wb'``: a kill or a full
    disk mid-write leaves a truncated checkpoint under its real name, the
    previous one already gone. Here the bytes go through
    :func:`~rock_plugin.utils.atomic_io.atomic_write`.
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
