# A tiny, fast variant of rock_b4 for tests: EfficientNet-B0 without pretrained
# weights at 32 px. `data_root` is set by the tests (--cfg-options).
_base_ = ['../../configs/rock_b4.py']

num_classes = 3
image_size = 32
model = dict(
    backbone=dict(arch='b0', init_cfg=None),
    head=dict(num_classes=num_classes, in_channels=1280))
data_preprocessor = dict(num_classes=num_classes)
train_pipeline = [
    dict(type='LoadImageWithPreResize'),
    dict(type='EfficientNetRandomCrop', scale=image_size, crop_padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageWithPreResize'),
    dict(type='EfficientNetCenterCrop', crop_size=image_size, crop_padding=4),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(ann_file='', classes=None, pipeline=train_pipeline,
                 split='train', val_ratio=0.25))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(ann_file='', classes=None, pipeline=test_pipeline,
                 split='val', val_ratio=0.25))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = dict(milestones=[1])
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1))
