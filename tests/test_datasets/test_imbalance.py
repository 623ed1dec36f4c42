"""Controls for small and imbalanced data: class_weight='auto', the
class-balanced sampler, early stopping (--patience)."""
import os.path as osp
import re

import numpy as np
import pytest

from conftest import TINY_CONFIG, make_class_folders, run_tool

COUNTS = {'alpha': 12, 'beta': 4, 'gamma': 2}  # 6:2:1


@pytest.fixture(scope='module')
def imbalanced(tmp_path_factory):
    """A generated folder-per-class set with 12 / 4 / 2 images."""
    root = str(tmp_path_factory.mktemp('imbalanced'))
    for i, (name, n) in enumerate(COUNTS.items()):
        make_class_folders(root, classes=(name, ), per_class=n, seed=i)
    return root


def _dataset(root):
    import rock_plugin  # noqa: F401
    from rock_plugin.datasets import RockDataset
    return RockDataset(data_root=root, lazy_init=False)


def test_auto_weights_are_the_inverse_frequencies(imbalanced):
    from rock_plugin.engine.hooks.class_weight_hook import \
        inverse_frequency_weights
    labels = _dataset(imbalanced).get_gt_labels()
    weights = inverse_frequency_weights(labels, 3)
    counts = np.array(list(COUNTS.values()))
    # N / (C * n_c): proportional to 1 / n_c, with mean weight per image 1
    np.testing.assert_allclose(weights, counts.sum() / (3 * counts))
    np.testing.assert_allclose(weights * counts, counts.sum() / 3)
    np.testing.assert_allclose(inverse_frequency_weights([0, 1, 2] * 4, 3),
                               np.ones(3))


def test_a_class_without_training_images_is_a_clear_error():
    from rock_plugin.engine.hooks.class_weight_hook import \
        inverse_frequency_weights
    from rock_plugin.utils.errors import DataError
    with pytest.raises(DataError, match=r"no training image.*\['c'\]"):
        inverse_frequency_weights([0, 0, 1], 3, ['a', 'b', 'c'])


def test_hook_fills_auto_weights_of_the_loss_from_the_training_split(
        imbalanced):
    from types import SimpleNamespace

    from mmpretrain.models.losses import CrossEntropyLoss

    from rock_plugin.engine.hooks import AutoClassWeightHook
    loss = CrossEntropyLoss(class_weight='auto')
    other = CrossEntropyLoss(class_weight=[1.0, 2.0, 3.0])
    model = __import__('torch').nn.ModuleList([loss, other])
    runner = SimpleNamespace(
        model=model,
        train_dataloader=SimpleNamespace(dataset=_dataset(imbalanced)))
    AutoClassWeightHook().before_train(runner)
    np.testing.assert_allclose(loss.class_weight, [0.5, 1.5, 3.0])
    assert other.class_weight == [1.0, 2.0, 3.0]
    # the weighted loss now runs (a string weight would fail here)
    import torch
    value = loss(torch.zeros(2, 3), torch.tensor([0, 2]))
    assert torch.isfinite(value)


def test_balanced_sampler_evens_out_class_counts(imbalanced):
    from rock_plugin.datasets import ClassBalancedSampler
    dataset = _dataset(imbalanced)
    labels = np.asarray(dataset.get_gt_labels())
    sampler = ClassBalancedSampler(dataset, num_samples=9000, seed=0)
    drawn = np.bincount(labels[list(sampler)], minlength=3)
    assert len(sampler) == 9000 and drawn.sum() == 9000
    # 6:2:1 in the data, about 1:1:1 drawn (3000 each; 5 sigma ~ 220)
    assert np.all(np.abs(drawn - 3000) < 250), drawn
    # every image of the rare class is drawn, and epochs differ but repeat
    assert set(np.flatnonzero(labels == 2)) <= set(sampler)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert len(ClassBalancedSampler(dataset, seed=0)) == len(dataset)


def test_train_with_auto_weights_balanced_sampler_and_patience(imbalanced,
                                                               tmp_path):
    """The three flags as a user runs them: the weights are logged, the
    sampler is used, and early stopping ends a 6-epoch run early."""
    work = str(tmp_path / 'run')
    proc = run_tool(
        'tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '0',
        '--work-dir', work, '--class-weight', 'auto', '--balanced-sampler',
        '--patience', '1', '--cfg-options', f'data_root={imbalanced}',
        f'train_dataloader.dataset.data_root={imbalanced}',
        f'val_dataloader.dataset.data_root={imbalanced}',
        'train_cfg.max_epochs=6', 'optim_wrapper.optimizer.lr=0')
    log = proc.stdout + proc.stderr
    # training split (val_ratio 0.25): 9 / 3 / 1 -> 13 / (3 * n_c)
    match = re.search(r"class_weight='auto'.*?alpha: ([\d.]+) \(n=9\), "
                      r'beta: ([\d.]+) \(n=3\), gamma: ([\d.]+) \(n=1\)', log)
    assert match, log[-3000:]
    np.testing.assert_allclose([float(g) for g in match.groups()],
                               [13 / 27, 13 / 9, 13 / 3], atol=1e-3)
    assert 'ClassBalancedSampler' in open(
        osp.join(work, 'tiny_config.py')).read()
    # lr 0: the metric never improves, so patience 1 stops after epoch 2
    assert 'did not improve' in log
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    assert not osp.isfile(osp.join(work, 'epoch_3.pth'))
