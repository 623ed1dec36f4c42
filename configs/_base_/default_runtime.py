# The runtime of every rock recipe: mmpretrain's default runtime plus the
# plugin's runner, checkpoints, history and run-safety hooks.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['rock_plugin'], allow_failed_imports=False)
# mmengine's Runner, minus the code it would run from checkpoint text, with
# safe checkpoint loading while it runs
# (rock_plugin/engine/runners/safe_loading_runner.py).
runner_type = 'SafeLoadingRunner'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # latest checkpoints (two, so a corrupt one has a predecessor) and best;
    # written atomically, ties go to the later epoch, plus stable best.pth
    # and last.pth (rock_plugin/engine/hooks/atomic_checkpoint_hook.py).
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='accuracy/top1', rule='greater'))
custom_hooks = [
    # history.csv (train/val loss, accuracy, P/R/F1 per epoch), its figures
    # (curves.png, confusion_matrix.png/.csv), and on --resume the resumed
    # epoch's validation, which its checkpoint was saved before.
    dict(type='HistoryHook'),
    dict(type='HistoryFigureHook'),
    dict(type='ResumeValidationHook'),
    dict(type='RngStateHook'),  # exact --resume
    dict(type='NanGuardHook'),  # stop on NaN/inf loss, keep good checkpoints
    # checkpoints load with weights_only (plain types, no pickled classes)
    dict(type='PlainCheckpointStateHook'),
    # --resume with a longer schedule: the config's scheduler `end` wins
    dict(type='ConfiguredScheduleEndHook'),
    # class_weight='auto' in a loss -> inverse-frequency weights of the
    # training split (--class-weight auto); does nothing otherwise.
    dict(type='AutoClassWeightHook'),
    # An OpenSetLinearClsHead's temperature, feature bank and "unknown"
    # threshold, fitted after each epoch on the validation fold (does
    # nothing for other heads).
    dict(type='OpenSetCalibrationHook'),
    # progress bars with the ETA of the whole run on a terminal (none in CI
    # or when stderr is a file; the log lines stay)
    dict(type='RichProgressBarHook'),
    # train_batch0.jpg and val_predictions.jpg (enabled=False: none).
    dict(type='TrainingPreviewHook'),
    # Early stopping (--patience N) adds (mmengine's, resumable)
    # dict(type='ResumableEarlyStoppingHook', monitor='accuracy/top1',
    #      patience=N).
]
# CPU processes need gloo and no device_ids
# (rock_plugin/engine/distributed.py).
model_wrapper_cfg = dict(type='CpuCompatibleDistributedDataParallel')
# Fixed-size input: let cuDNN pick the fastest kernels (GPU only; ignored on
# CPU, and switched off by --deterministic). On a GPU also add
# `train_dataloader.pin_memory=True val_dataloader.pin_memory=True` and --amp.
env_cfg = dict(cudnn_benchmark=True, dist_cfg=dict(backend='nccl'))
randomness = dict(seed=None, deterministic=False)
