# tiny_config with rock_b4's test-time augmentation on its 32 px test crop
# (tools/test.py, predict.py and cross_validate.py --tta).
_base_ = ['./tiny_config.py']

tta_pipeline = [
    dict(type='LoadImageWithPreResize'),
    dict(type='EfficientNetCenterCrop', crop_size=32, crop_padding=4),
    dict(type='TestTimeAug', transforms={{_base_.tta_views}}),
]
