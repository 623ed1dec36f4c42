# rock_b4_featcache: OPT-IN, APPROXIMATE "feature cache" linear probing.
#
# NOT the rock_b4 recipe's maths. The frozen EfficientNet-B4 turns
# `num_views` random training views (crop + flip) of every image into
# features once, before epoch 1; every epoch then trains only the linear head
# (same loss, SGD, batch 4, schedule) on one randomly chosen cached view per
# image, so epochs take milliseconds instead of a backbone pass per image.
# The head sees `num_views` crops per image instead of a new crop every
# epoch, so accuracy can differ from rock_b4's; validation is the same
# (CachedFeatureValLoop). One process only (no distributed training).
#
#   python tools/train.py configs/rock_b4_featcache.py --data-root datas
_base_ = ['./rock_b4.py']

train_cfg = dict(
    _delete_=True,  # replaces rock_b4's train_cfg
    type='FeatureCacheTrainLoop',
    max_epochs={{_base_.max_epochs}},
    val_interval=1,
    num_views=8)
