"""The product's error types: mistakes a user can cause and fix, which the
tools print as one ``error: ...`` line (a traceback only with ``--debug``).
"""
from typing import Optional


class DataError(ValueError):
    """A problem with the user's data, reported as one clear line.

    Args:
        message (str): What is wrong and what to do.
        path (str, optional): The file at fault.
        line (int, optional): The 1-based line number in ``path``.

    Example:
        >>> str(DataError('bad label', 'train.txt', 3))
        'train.txt:3: bad label'
    """

    def __init__(self, message: str, path: Optional[str] = None,
                 line: Optional[int] = None):
        self.path = path
        self.line = line
        where = ''
        if path is not None:
            where = f'{path}:{line}: ' if line is not None else f'{path}: '
        super().__init__(where + message)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot (or must not) be loaded."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class WorkDirError(RuntimeError):
    """The work dir is in use by another run, or holds a finished run."""
