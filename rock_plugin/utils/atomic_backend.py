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


class OwnFolderBackend:
    """A file backend whose ``remove`` / ``rmtree`` act only on paths that
    ``owns`` accepts (it warns about the others, which are kept);
    everything else is the wrapped backend's.

    Args:
        backend: An mmengine file backend.
        owns (callable): ``path -> bool``, asked at each removal.

    Example:
        >>> backend = OwnFolderBackend(LocalBackend(),
        ...                            lambda p: p.startswith('work/'))
        >>> backend.remove('/etc/hosts')  # kept
    """

    def __init__(self, backend, owns):
        self._backend = backend
        self._owns = owns

    def __getattr__(self, name):
        backend = self.__dict__.get('_backend')  # unset while copied
        if backend is None:
            raise AttributeError(name)
        return getattr(backend, name)

    def remove(self, filepath) -> None:
        if self._owns(filepath):
            self._backend.remove(filepath)

    def rmtree(self, dir_path) -> None:
        if self._owns(dir_path):
            self._backend.rmtree(dir_path)
