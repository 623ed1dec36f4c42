# rock_quickstart_finetune: the quick start with the top of the backbone
# trained too.
#
# EfficientNet-Lite2's stem and stages 0-5 stay frozen (weights and BN
# statistics, from the build on); stage 6 and the final 1x1 conv (1.2 M of
# its 4.8 M parameters, BN in training mode) train with the head, at a tenth
# of the head's lr. The frozen prefix runs without autograd on the frozen
# engine (ONNX Runtime on CPU) and returns the maps of stages 4-5 the neck
# pools; the rest runs in PyTorch with autograd (RockImageClassifier's
# frozen_stages). Other depths: --frozen-stages N (tools/train.py; -1 is
# the stem only, 7 the whole backbone, as the quick start).
#
#   python tools/train.py configs/rock_quickstart_finetune.py
#   python tools/train.py configs/rock_quickstart.py --frozen-stages 4
_base_ = ['./rock_quickstart.py']

model = dict(frozen_stages=5)
# the backbone's trainable stages at lr x 0.1 (0.00625 at batch 16): large
# steps would undo the ImageNet features that 189 images cannot relearn
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
