# rock_quickstart with rotation-aware training: thin sections have no up,
# so each square training crop is also turned by a random multiple of 90
# degrees (RandomRotate90, exact pixel permutations). With the horizontal
# flip, every one of the 8 flips/rotations (vertical flips included) is
# drawn equally often: the views the test-time augmentation averages. The
# rotation comes after the square crop (a 90-degree turn of a non-square
# image would swap its height and width) and draws from the per-sample seed
# (seed, epoch, index), so --resume still repeats a run exactly.
#
#   python tools/train.py configs/rock_quickstart_rot90.py
#   # against the shipped pipeline, same folds and seed:
#   python tools/cross_validate.py configs/rock_quickstart_rot90.py \
#       --folds 5 --seed 0 --tta
#   python tools/cross_validate.py configs/rock_quickstart.py \
#       --folds 5 --seed 0 --tta
_base_ = ['./rock_quickstart.py']

# rock_thin_sections.py's training pipeline, plus the rotation.
train_pipeline = [
    dict(type='LoadImageWithPreResize', pre_resize=256),
    dict(type='EfficientNetRandomCrop', scale={{_base_.image_size}},
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomRotate90'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
