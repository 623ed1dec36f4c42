# Rock thin sections read by RockDataset at 380 px (EfficientNet-style
# bicubic crops), scored by RockMetric, with 8-view test-time augmentation.
# Recipes set the loaders' batch_size and data_preprocessor.num_classes.
#
# Data (the original layout, relative to `data_root`): train.txt / test.txt
# with `<image path> <label>` lines and annotations.txt with `<name> <index>`
# lines.
# A folder per class works too: set ann_file='' and classes=None.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs32.py']

data_root = 'datas'
image_size = 380

train_pipeline = [
    dict(type='LoadImageWithPreResize'),
    dict(type='EfficientNetRandomCrop', scale=image_size,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# Validation uses the validation pipeline (the original validated with a copy
# of the training augmentation; not copied here).
test_pipeline = [
    dict(type='LoadImageWithPreResize'),
    dict(type='EfficientNetCenterCrop', crop_size=image_size,
         interpolation='bicubic'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
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
# Validation: CachedFeatureValLoop (schedules/sgd_steps.py) reads the images
# once and then reuses the frozen backbone's features, so the loader's
# workers need not persist (they would sit idle holding memory) and two of
# them suffice.
val_dataloader = dict(
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
val_evaluator = dict(_delete_=True, type='ClassReportMetric', topk=(1, 5))
test_evaluator = val_evaluator

# Test-time augmentation (--tta in tools/test.py, predict.py and
# cross_validate.py, the mmpretrain way): the 8 flips and 90-degree
# rotations of the square test crop (thin sections have no up or down; on a
# square crop these are exact pixel permutations), their logits averaged
# (LogMeanClsScoreTTA: the fitted temperature keeps its meaning; mmpretrain's
# AverageClsScoreTTA, the mean of the scores, was underconfident: README).
# A config that changes test_pipeline must define tta_pipeline again.
# Children reuse the views: tta_pipeline = [*test_pipeline[:-1],
# dict(type='TestTimeAug', transforms={{_base_.tta_views}})].
tta_model = dict(type='LogMeanClsScoreTTA')
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
