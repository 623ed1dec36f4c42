# tiny_config with rock_b4's test-time augmentation on its 32 px test crop
# (tools/test.py, predict.py and cross_validate.py --tta).
_base_ = ['./tiny_config.py']

tta_pipeline = [
    dict(type='LoadRockImage'),
    dict(type='EfficientNetCenterCrop', crop_size=32, crop_padding=4),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Rotate', angle=float(a), prob=1.0,
              random_negative_prob=0.0) for a in (0, 90, 180, 270)],
        [dict(type='RandomFlip', prob=p, direction='horizontal')
         for p in (0.0, 1.0)],
        [dict(type='PackInputs')],
    ]),
]
