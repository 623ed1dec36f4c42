"""DihedralMeanClassifier and OpenSetMLPClsHead: features that do not change
when the slide is turned or mirrored, a head with a hidden layer that keeps
calibration and novelty, and the open-set bank that follows that head."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import rock_plugin  # noqa: F401
from rock_plugin.engine.pooled_features import PooledFeatureCache
from rock_plugin.engine.runners import FeatureCacheTrainLoop
from rock_plugin.models.classifiers import dihedral_views


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def _model(views=8, engine=None, head='OpenSetMLPClsHead', **head_kwargs):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='DihedralMeanClassifier', views=views, freeze_backbone=True,
        frozen_engine=engine,
        backbone=dict(type='EfficientNetLite', weights=None,
                      out_indices=(4, 5, 6)),
        neck=dict(type='ConcatGlobalAveragePooling', l2_scale=16.0),
        head=dict(type=head, num_classes=3, in_channels=1904,
                  **head_kwargs)))
    model.init_weights()
    return model.eval()


def test_views_are_the_symmetries_of_the_square_identity_first():
    x = torch.arange(6.).reshape(1, 1, 2, 3)
    for n in (1, 4, 8):
        views = list(dihedral_views(x, n))
        assert len(views) == n and torch.equal(views[0], x)
        # all different images of the same pixels
        assert len({tuple(v.flatten().tolist()) + tuple(v.shape)
                    for v in views}) == n
        assert all(sorted(v.flatten().tolist()) == list(range(6))
                   for v in views)
    assert {tuple(v.shape[2:]) for v in dihedral_views(x, 4)} == {(2, 3)}
    with pytest.raises(ValueError, match='views must be one of'):
        list(dihedral_views(x, 2))
    with pytest.raises(ValueError, match='views must be one of'):
        _model(views=3)


@pytest.mark.parametrize('engine', [None, 'auto'])
def test_features_do_not_change_when_the_image_is_turned_or_mirrored(
        engine):
    model = _model(engine=engine)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model.extract_feat(x)[0]
        for view in dihedral_views(x, 8):
            torch.testing.assert_close(model.extract_feat(view)[0], ref,
                                       atol=1e-4, rtol=1e-4)
        # one view is not invariant: the mean is what makes it so
        single = _model(views=1, engine=engine)
        a = single.extract_feat(x)[0]
        b = single.extract_feat(torch.rot90(x, 1, (2, 3)))[0]
        assert (a - b).abs().max() > 1e-3
        # the mean of the 8 single-view features, as documented
        mean = torch.stack([single.extract_feat(v)[0]
                            for v in dihedral_views(x, 8)]).mean(0)
        torch.testing.assert_close(ref, mean, atol=1e-5, rtol=1e-5)
        pre = model.extract_feat(x, stage='pre_logits')
        torch.testing.assert_close(pre, model.head.pre_logits((ref, )))
        # the backbone's maps and the Grad-CAM path see the image as given
        maps = model.extract_feat(x, stage='backbone')
        torch.testing.assert_close(maps[-1], single.extract_feat(
            x, stage='backbone')[-1])
        with model.backbone_grad():
            torch.testing.assert_close(model.extract_feat(x)[0], a)


def test_mlp_head_keeps_calibration_novelty_and_its_state():
    head = MODELS.build(dict(type='OpenSetMLPClsHead', num_classes=3,
                             in_channels=8, mid_channels=4)).eval()
    feats = (torch.randn(5, 8), )
    assert head.pre_logits(feats).shape == (5, 4)
    assert head.fc.in_features == 4 and head.feat_channels == 8
    bank = torch.rand(6, 4)
    head.set_open_set(2.0, bank, torch.tensor([0, 1, 2, 0, 1, 2]),
                      [0.1, 0.2, -3.0, 1.0], 0.5)
    samples = head.predict(feats)
    logits = head(feats)
    torch.testing.assert_close(samples[0].pred_score,
                               torch.softmax(logits[0] / 2.0, 0))
    assert {'novelty', 'unknown', 'neighbors'} <= set(samples[0].keys())
    fresh = MODELS.build(dict(type='OpenSetMLPClsHead', num_classes=3,
                              in_channels=8, mid_channels=4)).eval()
    fresh.load_state_dict(head.state_dict())
    torch.testing.assert_close(fresh(feats), logits)
    assert fresh.bank.shape == (6, 4)
    from mmpretrain.structures import DataSample
    head.train()
    loss = head.loss(feats, [DataSample().set_gt_label(i % 3)
                             for i in range(5)])['loss']
    loss.backward()
    assert torch.isfinite(loss) and head.hidden.fc.weight.grad.abs().sum()
    with pytest.raises(ValueError, match='mid_channels'):
        MODELS.build(dict(type='OpenSetMLPClsHead', num_classes=3,
                          in_channels=8, mid_channels=0))


class Images(BaseDataset):
    """6 fixed 48 x 48 images, classes 0-2, with file names."""

    def load_data_list(self):
        gen = torch.Generator().manual_seed(0)
        return [dict(img=torch.rand(3, 48, 48, generator=gen) * 255,
                     img_path=f'image{i}.png', gt_label=i % 3)
                for i in range(6)]

    def prepare_data(self, idx):
        info = self.get_data_info(idx)
        return dict(inputs=info['img'],
                    data_samples=DataSample().set_gt_label(info['gt_label']))


def _model_with_preprocessor():
    model = _model()
    model.data_preprocessor = MODELS.build(dict(
        type='ClsDataPreprocessor', mean=[127.] * 3, std=[128.] * 3))
    return model


def _runner(model=None):
    return SimpleNamespace(val_loop=None, model=model,
                           train_dataloader=SimpleNamespace(
                               batch_size=4, num_workers=0))


def test_open_set_bank_follows_a_training_hidden_layer_without_the_backbone(
        monkeypatch):
    """The frozen backbone's pooled features are kept; the hidden layer's
    output (the bank) is computed again from them on every call."""
    model, runner, runs = _model_with_preprocessor(), _runner(), []
    model.backbone.register_forward_hook(lambda *a: runs.append(1))
    bars = []
    monkeypatch.setattr(
        'rock_plugin.engine.pooled_features.track',
        lambda it, description, **kw: bars.append(description) or it)
    cache = PooledFeatureCache()
    first, labels = cache(runner, model, Images(serialize_data=False), 'x')
    passes = len(runs)
    assert passes == 2 * 8 and first.shape == (6, 512)
    assert labels.tolist() == [0, 1, 2, 0, 1, 2]
    with torch.no_grad():
        model.head.hidden.fc.weight.mul_(2)
    second, _ = cache(runner, model, Images(serialize_data=False), 'x')
    assert len(runs) == passes  # no backbone pass
    assert bars == ['open-set features, x images']  # the first pass only
    assert not torch.allclose(first, second)


def test_open_set_bank_reuses_the_train_loops_exact_cache(monkeypatch):
    """With a deterministic pipeline, FeatureCacheTrainLoop's cached neck
    outputs are the bank's: no backbone pass, the same features as a pass
    of the hook's own; other images or another pipeline: its own pass."""
    from mmcv.transforms import RandomFlip
    monkeypatch.setattr('rock_plugin.engine.runners.feature_cache_loop.'
                        'track', lambda it, description, **kw: it)
    model, runs = _model_with_preprocessor(), []
    model.backbone.register_forward_hook(lambda *a: runs.append(1))
    images = Images(serialize_data=False)
    loop = FeatureCacheTrainLoop.__new__(FeatureCacheTrainLoop)
    loop._runner = _runner(model)
    loop.dataloader = SimpleNamespace(dataset=images, batch_size=4)
    loop.num_views, loop.feature_batch_size, loop._feats = 1, None, None
    loop.build_cache()
    assert len(runs) == 2 * 8  # 2 batches, 8 views each
    shared, labels = PooledFeatureCache()(_runner(), model, images, 'train',
                                          loop)
    assert len(runs) == 2 * 8 and labels.tolist() == [0, 1, 2] * 2
    own, own_labels = PooledFeatureCache()(_runner(), model, images, 'train')
    assert len(runs) == 4 * 8
    torch.testing.assert_close(shared, own)
    assert torch.equal(labels, own_labels)
    # fewer images, or a random transform: not the same features
    assert loop.exact_neck_features(Images(serialize_data=False,
                                           indices=5)) is None
    flipped = Images(serialize_data=False, pipeline=[RandomFlip(prob=0.5)])
    assert loop.exact_neck_features(flipped) is None  # another pipeline
    loop.dataloader.dataset = flipped
    assert loop.exact_neck_features(flipped) is None  # a random one
