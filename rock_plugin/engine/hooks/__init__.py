from .atomic_checkpoint_hook import AtomicCheckpointHook, RockCheckpointHook
from .class_weight_hook import AutoClassWeightHook
from .configured_schedule_end_hook import ConfiguredScheduleEndHook
from .dump_results_hook import DumpResultsHook
from .history_figure_hook import HistoryFigureHook
from .history_hook import HistoryHook
from .nan_guard_hook import NanGuardHook, TrainingDivergedError
from .open_set_calibration_hook import OpenSetCalibrationHook
from .open_set_test_hook import OpenSetTestHook
from .plain_checkpoint_state_hook import PlainCheckpointStateHook
from .prediction_visualization_hook import PredictionVisualizationHook
from .progress_bar_hook import RichProgressBarHook
from .resumable_early_stopping_hook import ResumableEarlyStoppingHook
from .rng_state_hook import RngStateHook
from .resume_validation_hook import ResumeValidationHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .slide_results_hook import SlideResultsHook
from .test_results_hook import TestResultsHook
from .training_preview_hook import TrainingPreviewHook

__all__ = ['HistoryHook', 'HistoryFigureHook', 'ResumeValidationHook',
           'RngStateHook', 'NanGuardHook', 'TrainingDivergedError',
           'PlainCheckpointStateHook', 'ConfiguredScheduleEndHook',
           'AutoClassWeightHook', 'AtomicCheckpointHook',
           'TrainingPreviewHook', 'ResumableEarlyStoppingHook',
           'TestResultsHook', 'DumpResultsHook', 'RichProgressBarHook',
           'SlideResultsHook',
           'PredictionVisualizationHook', 'OpenSetCalibrationHook',
           'OpenSetTestHook',
           # earlier names, kept for old configs and imports
           'SafeCheckpointHook', 'RockCheckpointHook']
