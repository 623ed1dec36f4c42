# rock_b4: the original rock_identification recipe on the MMEngine Runner.
#
# EfficientNet-B4 (ImageNet-pretrained, fully frozen, BN statistics frozen) +
# GAP + linear head, 11 rock classes, 380 px EfficientNet-style crops
# (bicubic), batch 4, SGD lr 0.1*4/256 with step decay at 30/60/90, 100 epochs.
#
#   python tools/train.py configs/rock_b4.py
#   python tools/train.py configs/rock_b4.py --data-root /data/rocks \
#       --cfg-options model.backbone.init_cfg.checkpoint=/path/b4.pth
#
# The parts, each on mmpretrain's own base file: the model, the data (layout
# of `data_root`, pipelines, loaders, metric, test-time augmentation), the
# schedule, and the runtime (runner and hooks) under configs/_base_/.
_base_ = [
    './_base_/models/efficientnet_b4_frozen.py',
    './_base_/datasets/rock.py',
    './_base_/schedules/sgd_steps.py',
    './_base_/default_runtime.py',
]

num_classes = 11
batch_size = 4
max_epochs = 100

model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(batch_size=batch_size)
val_dataloader = dict(batch_size=batch_size)
test_dataloader = val_dataloader

# SGD, lr = 0.1 * 4 / 256 (0.1 at batch 256, scaled to batch 4).
optim_wrapper = dict(optimizer=dict(lr=0.1 * batch_size / 256))
train_cfg = dict(max_epochs=max_epochs)
# lr above is already for batch 4.
auto_scale_lr = dict(base_batch_size=batch_size)
