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
    # Speed-up (ours, not mmpretrain's): the frozen backbone runs as a fused
    # copy (BN folded into the convs) on an inference engine. 'auto': ONNX
    # Runtime on CPU (exported in memory at the first batch), eager PyTorch
    # on CUDA. Most of the ~4x training / ~5x prediction speed-up over stock
    # mmpretrain on 2 CPU cores (docs/benchmark.md); outputs equal to
    # float32 rounding (~1e-6). None: mmpretrain's plain forward. Weights
    # and checkpoints are the same either way. Engines:
    # rock_plugin.models.accel.ENGINES.
    frozen_engine='auto',
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=b4_imagenet,
                                prefix='backbone')),
    # mmpretrain's LinearClsHead plus calibrated scores and an "unknown"
    # answer: temperature, bank of training features and novelty threshold
    # are buffers that OpenSetCalibrationHook (default_runtime.py) fits
    # after each epoch (rock_plugin/models/heads/open_set_head.py).
    head=dict(type='OpenSetLinearClsHead'))
