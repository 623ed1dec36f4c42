# rock_b4: the original rock_identification recipe on the MMEngine Runner.
#
# EfficientNet-B4 (ImageNet-pretrained, fully frozen, BN statistics frozen) +
# GAP + linear head, 11 rock classes, 380 px EfficientNet-style crops
# (bicubic), batch 4, SGD lr 0.1*4/256 with step decay at 30/60/90, 100 epochs.
#
#   python tools/train.py configs/rock_b4.py
#   python tools/train.py configs/rock_b4.py --cfg-options \
#       data_root=/data/rocks model.backbone.init_cfg.checkpoint=/path/b4.pth
#
# Data (the original layout, relative to `data_root`): train.txt / test.txt with
# `<image path> <label>` lines and annotations.txt with `<name> <index>` lines.
# A folder per class works too: set ann_file='' and classes=None.
_base_ = ['mmpretrain::efficientnet/efficientnet-b4_8xb32_in1k.py']

custom_imports = dict(imports=['rock_plugin'], allow_failed_imports=False)
# mmengine's Runner, minus the code it would run from checkpoint text, with
# safe checkpoint loading while it runs (rock_plugin/engine/rock_runner.py).
runner_type = 'RockRunner'

data_root = 'datas'
num_classes = 11
image_size = 380
batch_size = 4
max_epochs = 100
b4_imagenet = ('https://download.openmmlab.com/mmclassification/v0/'
               'efficientnet/'
               'efficientnet-b4_3rdparty_8xb32_in1k_20220119-81fd4077.pth')

model = dict(
    type='RockImageClassifier',
    # freeze_layers=('backbone',): every stage frozen, BN statistics frozen.
    freeze_backbone=True,
    backbone=dict(
        type='EfficientNet',
        arch='b4',
        init_cfg=dict(type='Pretrained', checkpoint=b4_imagenet,
                      prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=1792,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadRockImage'),
    dict(type='EfficientNetRandomCrop', scale=image_size,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# Validation uses the validation pipeline (the original validated with a copy
# of the training augmentation; not copied here).
test_pipeline = [
    dict(type='LoadRockImage'),
    dict(type='EfficientNetCenterCrop', crop_size=image_size,
         interpolation='bicubic'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,  # replaces the inherited ImageNet dataset
        type='RockDataset',
        data_root=data_root,
        ann_file='train.txt',
        classes='annotations.txt',
        pipeline=train_pipeline),
    # Each sample's crop and flip come from (seed, epoch, index), not from
    # per-worker random streams: --resume repeats an uninterrupted run
    # exactly, with any num_workers (rock_plugin/datasets/
    # epoch_seeded_sampler.py).
    sampler=dict(type='EpochSeededSampler', shuffle=True))
# Validation: CachedFeatureValLoop (below) reads the images once and then
# reuses the frozen backbone's features, so the loader's workers need not
# persist (they would sit idle holding memory) and two of them suffice.
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=False,
    drop_last=False,  # never drop validation samples
    dataset=dict(
        _delete_=True,
        type='RockDataset',
        data_root=data_root,
        ann_file='test.txt',
        classes='annotations.txt',
        test_mode=True,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader

# Test-time augmentation (--tta in tools/test.py, predict.py and
# cross_validate.py, the mmpretrain way): the scores of the 8 flips and
# 90-degree rotations of the square test crop are averaged (thin sections
# have no up or down; on a square crop these are exact pixel permutations).
# A config that changes test_pipeline must define tta_pipeline again.
# Children reuse the views: tta_pipeline = [*test_pipeline[:-1],
# dict(type='TestTimeAug', transforms={{_base_.tta_views}})].
tta_model = dict(type='AverageClsScoreTTA')
tta_views = [
    [dict(type='Rotate', angle=float(a), prob=1.0, random_negative_prob=0.0)
     for a in (0, 90, 180, 270)],
    [dict(type='RandomFlip', prob=p, direction='horizontal')
     for p in (0.0, 1.0)],
    [dict(type='PackInputs')],
]
tta_pipeline = [
    *test_pipeline[:-1],
    dict(type='TestTimeAug', transforms=tta_views),
]

# The frozen backbone's validation features are computed once and reused
# every later epoch; the metrics equal the plain ValLoop's exactly, and the
# cache is rebuilt if anything upstream of the head changes (see
# rock_plugin/engine/cached_val_loop.py); val_cfg.type='ValLoop' is the plain
# loop.
val_cfg = dict(type='CachedFeatureValLoop')
val_evaluator = dict(_delete_=True, type='RockMetric', topk=(1, 5))
test_evaluator = val_evaluator

# SGD, lr = 0.1 * 4 / 256 (0.1 at batch 256, scaled to batch 4); only the
# trainable (head) parameters reach the optimizer.
optim_wrapper = dict(
    constructor='TrainableParamsOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.1 * batch_size / 256, momentum=0.9,
                   weight_decay=1e-4))
# StepLrUpdater(step=[30, 60, 90]). tools/train.py gives the scheduler an
# explicit `end` = train_cfg.max_epochs (after --cfg-options), and on resume
# the configured end wins over the one saved in the checkpoint.
param_scheduler = dict(
    _delete_=True, type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
    gamma=0.1, begin=0)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
# lr above is already for batch 4.
auto_scale_lr = dict(base_batch_size=batch_size)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # latest checkpoints (two, so a corrupt one has a predecessor) and best;
    # written atomically, ties go to the later epoch, plus stable best.pth
    # and last.pth (rock_plugin/hooks/rock_checkpoint_hook.py).
    checkpoint=dict(type='RockCheckpointHook', interval=1, max_keep_ckpts=2,
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
    dict(type='SafeCheckpointHook'),  # checkpoints load with weights_only
    # class_weight='auto' in a loss -> inverse-frequency weights of the
    # training split (--class-weight auto); does nothing otherwise.
    dict(type='AutoClassWeightHook'),
    # train_batch0.jpg and val_predictions.jpg (enabled=False: none).
    dict(type='TrainingPreviewHook'),
    # Early stopping (--patience N) adds mmengine's
    # dict(type='EarlyStoppingHook', monitor='accuracy/top1', patience=N).
]
# CPU processes need gloo and no device_ids (rock_plugin/engine/distributed.py).
model_wrapper_cfg = dict(type='RockDistributedDataParallel')
# Fixed 380 px input: let cuDNN pick the fastest kernels (GPU only; ignored
# on CPU, and switched off by --deterministic). On a GPU also add
# `train_dataloader.pin_memory=True val_dataloader.pin_memory=True` and --amp.
env_cfg = dict(cudnn_benchmark=True, dist_cfg=dict(backend='nccl'))
randomness = dict(seed=None, deterministic=False)
