"""mmengine's local file backend with atomic writes, registered under its own
name ``'rock_atomic_local'`` (nothing of mmengine's is replaced)."""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from .atomic_io import atomic_write

ATOMIC_LOCAL_BACKEND = 'rock_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` replace files atomically
    (:func:`~.atomic_io.atomic_write`): mmengine's ``put`` opens the file with
    ``'wb'``, so a kill or a full disk mid-write leaves a truncated checkpoint
    under its real name, the previous one already gone."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically; an ``OSError`` names
        the file, and the previous file, if any, is kept."""
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


# force: a module reload re-registers our own name, never one of mmengine's.
register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, force=True)
