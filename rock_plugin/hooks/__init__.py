from .history_hook import HistoryHook
from .nan_guard_hook import NanGuardHook, TrainingDivergedError
from .rng_state_hook import RngStateHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['HistoryHook', 'RngStateHook', 'NanGuardHook',
           'TrainingDivergedError', 'SafeCheckpointHook']
