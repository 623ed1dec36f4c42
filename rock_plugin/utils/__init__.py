from .atomic_io import atomic_save_figure, atomic_write
from .errors import (CheckpointError, DataError, TrainingDivergedError,
                     WorkDirError)

__all__ = ['atomic_write', 'atomic_save_figure', 'CheckpointError',
           'DataError', 'TrainingDivergedError', 'WorkDirError']
