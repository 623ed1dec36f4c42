"""OpenSetLinearClsHead: calibrated scores, novelty, neighbours, state."""
import pytest
import torch
import torch.nn.functional as F

import rock_plugin  # noqa: F401
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    # registry names resolve in mmpretrain's scope, whatever ran before
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def _head(**kwargs):
    return MODELS.build(dict(type='OpenSetLinearClsHead', num_classes=3,
                             in_channels=4, **kwargs))


def _fitted(head, threshold=0.5):
    bank = torch.eye(4)[:3] * 5  # one training image per class
    head.set_open_set(2.0, bank, torch.tensor([0, 1, 2]),
                      [0.1, 0.2, -3.0, 1.0], threshold)
    return head


def test_unfitted_head_is_mmpretrains_linear_head():
    head = _head()
    feats = (torch.randn(5, 4), )
    samples = head.predict(feats)
    expected = F.softmax(head(feats), dim=1)
    for sample, row in zip(samples, expected):
        torch.testing.assert_close(sample.pred_score, row)
        assert 'novelty' not in sample and 'unknown' not in sample


def test_scores_use_the_temperature_and_keep_raw_scores():
    head = _fitted(_head())
    feats = (torch.randn(5, 4), )
    logits = head(feats)
    samples = head.predict(feats)
    for sample, row in zip(samples, logits):
        torch.testing.assert_close(sample.pred_score, F.softmax(row / 2, 0))
        torch.testing.assert_close(sample.raw_score, F.softmax(row, 0))


def test_novelty_neighbours_and_threshold():
    head = _fitted(_head(), threshold=0.5)
    near = torch.tensor([[0.0, 3.0, 0.1, 0.0]])  # like bank image 1
    far = torch.tensor([[0.0, 0.0, 0.0, 4.0]])   # like nothing in the bank
    a, b = head.predict((torch.cat([near, far]), ))
    assert a.neighbors.tolist()[0] == 1 and a.neighbor_sims[0] > 0.99
    assert len(a.neighbors) == 3
    assert b.novelty > a.novelty
    # the formula: z(kNN cosine distance) + z(energy)
    logits = head.fc(far)
    knn = 1 - F.normalize(far, dim=1) @ F.normalize(head.bank.float(),
                                                    dim=1).t()
    expected = (knn.min() - 0.1) / 0.2 + \
        (-torch.logsumexp(logits, 1)[0] + 3.0) / 1.0
    assert float(b.novelty) == pytest.approx(float(expected), abs=1e-3)
    assert b.unknown == bool(b.novelty > 0.5)
    head.unknown_threshold = -1e9  # --unknown-threshold
    assert all(s.unknown for s in head.predict((torch.cat([near, far]), )))
    head.unknown_threshold = 1e9
    assert not any(s.unknown for s in head.predict((far, )))


def test_bank_survives_a_state_dict_round_trip_into_a_fresh_head():
    head = _fitted(_head())
    fresh = _head()
    assert not fresh.has_bank
    fresh.load_state_dict(head.state_dict())  # strict: same keys
    assert fresh.has_bank and fresh.bank.shape == (3, 4)
    assert fresh.bank.dtype == torch.float16
    assert float(fresh.temperature) == 2.0 and fresh.threshold == 0.5
    feats = (torch.randn(2, 4), )
    for x, y in zip(head.predict(feats), fresh.predict(feats)):
        torch.testing.assert_close(x.novelty, y.novelty)


def test_keep_features_and_existing_samples():
    head = _fitted(_head(keep_features=True))
    given = [DataSample().set_gt_label(1)]
    (sample, ) = head.predict((torch.randn(1, 4), ), given)
    assert sample is given[0] and int(sample.gt_label) == 1
    assert sample.feature.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_neck_l2_scale():
    neck = MODELS.build(dict(type='ConcatGlobalAveragePooling',
                             l2_scale=16.0))
    (out, ) = neck((torch.rand(3, 8, 5, 5) * 100, torch.rand(3, 2, 3, 3)))
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.norm(dim=1), torch.full((3, ), 16.0))
    plain = MODELS.build(dict(type='ConcatGlobalAveragePooling'))
    assert plain((torch.ones(1, 2, 2, 2) * 3, ))[0].tolist() == [[3., 3.]]
    with pytest.raises(ValueError, match='l2_scale'):
        MODELS.build(dict(type='ConcatGlobalAveragePooling', l2_scale=0))
