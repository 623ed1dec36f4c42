from .class_weight_hook import AutoClassWeightHook
from .history_figure_hook import HistoryFigureHook
from .history_hook import HistoryHook
from .nan_guard_hook import NanGuardHook, TrainingDivergedError
from .resumable_early_stopping_hook import ResumableEarlyStoppingHook
from .rng_state_hook import RngStateHook
from .rock_checkpoint_hook import RockCheckpointHook
from .resume_validation_hook import ResumeValidationHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .training_preview_hook import TrainingPreviewHook

__all__ = ['HistoryHook', 'HistoryFigureHook', 'ResumeValidationHook',
           'RngStateHook', 'NanGuardHook', 'TrainingDivergedError',
           'SafeCheckpointHook', 'AutoClassWeightHook', 'RockCheckpointHook',
           'TrainingPreviewHook', 'ResumableEarlyStoppingHook']
