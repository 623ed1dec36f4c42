"""RandomRotate90 and configs/rock_quickstart_rot90.py: uniform k, lossless,
shapes, labels untouched; the same seed gives the same images with any
number of workers."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import rock_plugin  # noqa: F401
from conftest import REPO
from rock_plugin.datasets import RandomRotate90
from rock_plugin.datasets.samplers.epoch_seeded_sampler import seeded_rng

ROT90 = osp.join(REPO, 'configs', 'rock_quickstart_rot90.py')
QUICKSTART = osp.join(REPO, 'configs', 'rock_quickstart.py')


def _results(h=5, w=7):
    img = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), gt_label=4,
                img_path='a.png')


def test_k_is_uniform_over_per_sample_seeds():
    t = RandomRotate90()
    ks = []
    for i in range(4000):  # the keys EpochSeededSampler gives: (seed,
        with seeded_rng((0, i // 100, i % 100)):  # epoch, index)
            ks.append(t(_results())['rotate90_k'])
    freq = np.bincount(ks, minlength=4) / len(ks)
    assert np.all(np.abs(freq - 0.25) < 0.03), freq  # 4 sigma: 0.027
    # the same key, the same k; the draw follows NumPy's global generator
    with seeded_rng((0, 1, 2)):
        assert t(_results())['rotate90_k'] == ks[102]
    np.random.seed(3)
    first = [t(_results())['rotate90_k'] for _ in range(20)]
    np.random.seed(3)
    assert [t(_results())['rotate90_k'] for _ in range(20)] == first


@pytest.mark.parametrize('k', [0, 1, 2, 3])
def test_rotation_is_lossless_and_leaves_the_label(k):
    t = RandomRotate90()
    t._random_k = lambda: k  # an instance attribute wins over the method
    src = _results()
    img = src['img'].copy()
    out = t(dict(src))
    assert out['rotate90_k'] == k
    assert np.array_equal(out['img'], np.rot90(img, k))  # counter-clockwise
    assert np.array_equal(np.rot90(out['img'], -k), img)  # exact inverse
    assert out['img'].dtype == np.uint8 and out['img'].flags.c_contiguous
    # a non-square image swaps height and width for odd k
    hw = (7, 5) if k % 2 else (5, 7)
    assert out['img'].shape == (*hw, 3) and tuple(out['img_shape']) == hw
    assert out['ori_shape'] == (5, 7)
    assert (out['gt_label'], out['img_path']) == (4, 'a.png')


def test_config_adds_the_rotation_after_the_square_crop():
    rot, base = Config.fromfile(ROT90), Config.fromfile(QUICKSTART)
    steps = rot.train_dataloader.dataset.pipeline
    expected = list(base.train_dataloader.dataset.pipeline)
    expected.insert(-1, dict(type='RandomRotate90'))
    assert steps == expected  # nothing else drifts from the quick start
    assert steps[1].type == 'EfficientNetRandomCrop'
    # only the training pipeline differs (validation, TTA, recipe as is)
    r, b = rot.to_dict(), base.to_dict()
    assert {k for k in r.keys() | b.keys() if r.get(k) != b.get(k)} == {
        'train_dataloader', 'train_pipeline'}
    assert 'RandomRotate90' not in str(rot.val_dataloader)


def _loader(data, num_workers, seed=7):
    from mmengine.runner import Runner
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(ROT90)
    return Runner.build_dataloader(dict(
        batch_size=4, num_workers=num_workers,
        persistent_workers=num_workers > 0,
        dataset=dict(type='RockDataset', data_root=data,
                     pipeline=cfg.train_dataloader.dataset.pipeline),
        sampler=dict(type='EpochSeededSampler', shuffle=True),
        collate_fn=dict(type='default_collate')), seed=seed)


def _images(loader, epochs=(0, 1)):
    out = {}
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            for img, sample in zip(batch['inputs'], batch['data_samples']):
                out[(epoch, int(sample.sample_idx))] = img
    return out


def test_same_seed_same_rotated_images_with_any_workers(tiny_data):
    """The config's pipeline on 48x56 images: square 260 px crops turned,
    the same for one seed with 0 or 2 workers, other epochs other views."""
    ref = _images(_loader(tiny_data, 0))
    assert len(ref) == 2 * 24
    assert {tuple(v.shape) for v in ref.values()} == {(3, 260, 260)}
    got = _images(_loader(tiny_data, 2))
    assert got.keys() == ref.keys()
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    same = sum(torch.equal(ref[(0, i)], ref[(1, i)]) for i in range(24))
    assert same < 12


def test_rotation_draws_every_k_and_keeps_the_crop(tiny_data):
    """Through the dataset: each sample is its unrotated crop and flip
    turned by the drawn k (the rotation, last, changes no earlier draw)."""
    from rock_plugin.datasets.samplers.epoch_seeded_sampler import \
        SeededIndex
    dataset = _loader(tiny_data, 0).dataset
    steps = dataset.pipeline.transforms
    rotate = next(t for t in steps if isinstance(t, RandomRotate90))
    ks = []

    def spy():
        # the undecorated method (the class attribute is a descriptor)
        ks.append(RandomRotate90.__dict__['_random_k'].func(rotate))
        return ks[-1]

    rotate._random_k = spy
    rotated = [dataset[SeededIndex(i, (7, 0))]['inputs'] for i in range(24)]
    assert len(ks) == 24 and set(ks) == {0, 1, 2, 3}
    dataset.pipeline.transforms = [t for t in steps if t is not rotate]
    assert len(dataset.pipeline.transforms) == len(steps) - 1
    for i, k in enumerate(ks):
        plain = dataset[SeededIndex(i, (7, 0))]['inputs']
        assert torch.equal(rotated[i], torch.rot90(plain, k, dims=(1, 2)))
