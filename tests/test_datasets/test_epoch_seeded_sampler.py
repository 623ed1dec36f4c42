"""EpochSeededSampler: a sample's augmentation is a pure function of
(seed, epoch, index), whatever the workers, and differs between epochs."""
import pickle
import random

import numpy as np
import pytest
import torch

from rock_plugin.datasets.samplers.epoch_seeded_sampler import (SeededIndex,
                                                       seeded_rng)

PIPELINE = [
    dict(type='LoadRockImage'),
    dict(type='EfficientNetRandomCrop', scale=32, crop_padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def _augmented(tiny_data, num_workers, epochs=(0, 1, 2), seed=7):
    """{(epoch, sample_idx): image tensor} from the real runner-built loader
    (mmengine's worker seeding included), workers persistent."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    import rock_plugin  # noqa: F401
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=num_workers,
        persistent_workers=num_workers > 0,
        dataset=dict(type='RockDataset', data_root=tiny_data,
                     pipeline=PIPELINE),
        sampler=dict(type='EpochSeededSampler', shuffle=True),
        collate_fn=dict(type='default_collate')), seed=seed)
    out = {}
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            for img, sample in zip(batch['inputs'], batch['data_samples']):
                out[(epoch, int(sample.sample_idx))] = img.clone()
    return out


def test_same_augmentation_with_0_2_or_4_persistent_workers(tiny_data):
    ref = _augmented(tiny_data, 0)
    assert len(ref) == 3 * 24
    for workers in (2, 4):
        got = _augmented(tiny_data, workers)
        assert got.keys() == ref.keys()
        assert all(torch.equal(got[k], ref[k]) for k in ref), workers


def test_no_two_epochs_replay_the_same_augmentation(tiny_data):
    aug = _augmented(tiny_data, 2)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        same = sum(torch.equal(aug[(a, i)], aug[(b, i)]) for i in range(24))
        # random crops of 48x56 images: a repeat of all 24 is impossible
        assert same < 24 // 2, (a, b, same)
    other_seed = _augmented(tiny_data, 0, epochs=(0, ), seed=8)
    assert sum(torch.equal(other_seed[(0, i)], aug[(0, i)])
               for i in range(24)) < 24 // 2


def test_seeded_rng_restores_the_callers_streams():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with seeded_rng((3, 0, 5)):
        inside = (random.random(), np.random.rand(), torch.rand(1).item())
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == \
        expected
    with seeded_rng((3, 0, 5)):
        assert (random.random(), np.random.rand(),
                torch.rand(1).item()) == inside
    with seeded_rng((3, 1, 5)):
        assert np.random.rand() != inside[1]


def test_seeded_index_is_an_int_that_survives_pickling():
    idx = SeededIndex(5, (3, 2))
    assert idx == 5 and [10, 11, 12, 13, 14, 15][idx] == 15
    back = pickle.loads(pickle.dumps(idx))
    assert back == 5 and back.aug_seed == (3, 2)
    with pytest.raises(AttributeError):
        (idx + 1).aug_seed  # arithmetic gives a plain int: no stale seed


def test_shipped_configs_seed_augmentation_per_sample_with_their_workers():
    from mmengine.config import Config
    from conftest import REPO
    for name, workers in (('rock_b4', 4), ('rock_quickstart', 2)):
        cfg = Config.fromfile(f'{REPO}/configs/{name}.py')
        loader = cfg.train_dataloader
        assert loader.sampler.type == 'EpochSeededSampler'
        assert loader.num_workers == workers and loader.persistent_workers
        hooks = [h.type for h in cfg.custom_hooks]
        assert {'HistoryHook', 'HistoryFigureHook', 'ResumeValidationHook',
                'RngStateHook'} <= set(hooks)
