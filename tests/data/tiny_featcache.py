# The opt-in feature-cache mode (configs/rock_b4_featcache.py) on the tiny
# test data: the pretrained Lite0 backbone of the quick start at 64 px (its
# ImageNet features tell the tiny classes apart; a random B0 cannot), 4
# epochs of head training on 4 cached views per image.
_base_ = ['./tiny_config.py']

image_size = 64
model = dict(
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite',
        model_name='tf_efficientnet_lite0',
        weights='package'))
data_preprocessor = dict(mean=[127.0] * 3, std=[128.0] * 3, to_rgb=True)
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = dict(milestones=[3])
train_cfg = dict(
    _delete_=True,
    type='FeatureCacheTrainLoop',
    max_epochs=4,
    val_interval=1,
    num_views=4)
