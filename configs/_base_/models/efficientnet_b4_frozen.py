# mmpretrain's EfficientNet-B4 classifier (GAP, LinearClsHead with 1792
# inputs, cross-entropy, top-1/5), ImageNet-pretrained and fully frozen with
# frozen BN statistics: only the head trains. Recipes set head.num_classes.
_base_ = ['mmpretrain::_base_/models/efficientnet_b4.py']

b4_imagenet = ('https://download.openmmlab.com/mmclassification/v0/'
               'efficientnet/'
               'efficientnet-b4_3rdparty_8xb32_in1k_20220119-81fd4077.pth')

model = dict(
    type='RockImageClassifier',
    # freeze_layers=('backbone',): every stage frozen, BN statistics frozen.
    freeze_backbone=True,
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=b4_imagenet,
                                prefix='backbone')))
