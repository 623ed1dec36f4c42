"""EpochSeededSampler around ClassBalancedSampler: an image drawn twice in
an epoch gets two augmentations, still a pure function of (seed, epoch,
index, draw) whatever the workers."""
import pickle

import torch

from rock_plugin.datasets.samplers.epoch_seeded_sampler import SeededIndex

# RandomCrop of a 48 x 56 image: 25 x 33 places, times a flip.
PIPELINE = [
    dict(type='LoadRockImage'),
    dict(type='RandomCrop', crop_size=24),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def _loader(tiny_data, num_workers, seed=3):
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    import rock_plugin  # noqa: F401
    init_default_scope('mmpretrain')
    return Runner.build_dataloader(dict(
        batch_size=4, num_workers=num_workers,
        persistent_workers=num_workers > 0,
        dataset=dict(type='RockDataset', data_root=tiny_data,
                     pipeline=PIPELINE),
        sampler=dict(type='EpochSeededSampler',
                     sampler=dict(type='ClassBalancedSampler')),
        collate_fn=dict(type='default_collate')), seed=seed)


def _epoch(loader, epoch):
    """[(sample index, image)] in the order the loader gave them."""
    loader.sampler.set_epoch(epoch)
    return [(int(s.sample_idx), img.clone()) for batch in loader
            for img, s in zip(batch['inputs'], batch['data_samples'])]


def _same(a, b):
    return len(a) == len(b) and all(
        i == j and torch.equal(x, y) for (i, x), (j, y) in zip(a, b))


def test_each_draw_of_an_image_gets_its_own_augmentation(tiny_data):
    loader = _loader(tiny_data, 0)
    seen, repeats = {}, 0
    for epoch in (0, 1):
        for index, img in _epoch(loader, epoch):
            for earlier in seen.get((epoch, index), []):
                repeats += 1
                assert not torch.equal(img, earlier), (epoch, index)
            seen.setdefault((epoch, index), []).append(img)
    assert repeats >= 3  # 24 draws with replacement from 24 images


def test_draws_are_the_same_with_0_or_2_workers_and_after_resume(
        tiny_data):
    ref = _loader(tiny_data, 0)
    ref_epochs = [_epoch(ref, e) for e in (0, 1)]
    workers = _loader(tiny_data, 2)
    assert all(_same(_epoch(workers, e), ref_epochs[e]) for e in (0, 1))
    resumed = _loader(tiny_data, 2)  # a new process starting at epoch 1
    assert _same(_epoch(resumed, 1), ref_epochs[1])


def test_a_repeat_has_its_own_key_and_a_first_draw_keeps_the_old_one():
    first, again = SeededIndex(5, (3, 2)), SeededIndex(5, (3, 2), draw=1)
    assert first.rng_key == (3, 2, 5)  # as before this change
    assert again.rng_key == (3, 2, 5, 1)
    back = pickle.loads(pickle.dumps(again))
    assert back == 5 and back.rng_key == again.rng_key
    from rock_plugin.datasets import EpochSeededSampler

    class Fixed(list):  # a sampler that repeats 4
        def set_epoch(self, epoch):
            pass
    sampler = EpochSeededSampler.__new__(EpochSeededSampler)
    sampler.seed, sampler.epoch, sampler.sampler = 3, 2, Fixed([4, 1, 4, 4])
    assert [(int(i), i.draw) for i in sampler] == \
        [(4, 0), (1, 0), (4, 1), (4, 2)]
