# mmpretrain's ImageNet schedule (SGD lr 0.1 for batch 256, momentum 0.9,
# weight decay 1e-4, lr x0.1 at epochs 30/60/90, 100 epochs), training only
# the trainable (head) parameters and validating with the feature cache.
# Recipes scale lr to their batch and set auto_scale_lr to that batch.
_base_ = ['mmpretrain::_base_/schedules/imagenet_bs256.py']

# Only the trainable (head) parameters reach the optimizer.
optim_wrapper = dict(
    constructor='TrainableParamsOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
# StepLrUpdater(step=[30, 60, 90]). tools/train.py gives the scheduler an
# explicit `end` = train_cfg.max_epochs (after --cfg-options), and on resume
# the configured end wins over the one saved in the checkpoint.
param_scheduler = dict(
    _delete_=True, type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
    gamma=0.1, begin=0)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
# The frozen backbone's validation features are computed once and reused
# every later epoch; the metrics equal the plain ValLoop's exactly, and the
# cache is rebuilt if anything upstream of the head changes (see
# rock_plugin/engine/runners/cached_val_loop.py); val_cfg.type='ValLoop' is
# the plain loop.
val_cfg = dict(type='CachedFeatureValLoop')
