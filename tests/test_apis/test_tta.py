"""Test-time augmentation: the configs' tta_pipeline gives the 8 flips and
90-degree rotations, and the TTA model is blind to the slide's orientation."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO, TINY_CONFIG

QUICK = osp.join(REPO, 'configs', 'rock_quickstart.py')
TINY_TTA = osp.join(REPO, 'tests', 'data', 'tiny_tta_config.py')


def _dihedral(img):
    """The 8 rotations and mirror images of an ``H x W x C`` array."""
    return [np.rot90(f, k) for f in (img, img[:, ::-1]) for k in range(4)]


def _square_png(path, seed, size=72):
    from PIL import Image
    rng = np.random.default_rng(seed)
    # an asymmetric picture: a gradient, a bright corner, noise
    img = np.linspace(0, 200, size)[None, :, None] * np.ones((size, 1, 3))
    img[:size // 4, :size // 3] = (250, 30, 30)
    img = np.clip(img + rng.integers(0, 40, img.shape), 0, 255)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return img.astype(np.uint8)


def test_every_config_has_a_checked_tta_pipeline(monkeypatch):
    from rock_plugin.apis.tta import tta_config
    for name in ('rock_b4.py', 'rock_quickstart.py', 'rock_b4_featcache.py'):
        cfg = tta_config(Config.fromfile(osp.join(REPO, 'configs', name)))
        assert cfg.model.type == 'LogMeanClsScoreTTA'
        assert cfg.model.module.type == 'RockImageClassifier'
        assert cfg.test_dataloader.dataset.pipeline[-1].type == 'TestTimeAug'
    # the dihedral config: allowed, with a warning that it is wasted time
    import rock_plugin.apis.tta as tta
    logs = []
    monkeypatch.setattr(tta, 'print_log', lambda msg, **kw: logs.append(msg))
    cfg = tta_config(Config.fromfile(osp.join(
        REPO, 'configs', 'rock_quickstart_dihedral.py')))
    assert cfg.model.module.type == 'DihedralMeanClassifier'
    assert len(logs) == 1 and 'add time, not information' in logs[0]
    logs.clear()
    tta_config(Config.fromfile(QUICK))
    assert logs == []
    # a child config whose test crop differs from its inherited tta_pipeline
    with pytest.raises(ValueError, match='define tta_pipeline again'):
        tta_config(Config.fromfile(TINY_CONFIG))


def test_tta_pipeline_gives_the_eight_dihedral_views(tmp_path):
    import rock_plugin  # noqa: F401
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(TINY_TTA)
    path = str(tmp_path / 'square.png')
    _square_png(path, 0, size=40)
    plain = Compose(cfg.test_dataloader.dataset.pipeline)(
        dict(img_path=path))['inputs'].numpy().transpose(1, 2, 0)
    views = Compose(cfg.tta_pipeline)(dict(img_path=path))['inputs']
    assert len(views) == 8
    got = sorted(v.numpy().transpose(1, 2, 0).tobytes() for v in views)
    want = sorted(np.ascontiguousarray(v).tobytes()
                  for v in _dihedral(plain))
    assert got == want


def test_tta_scores_do_not_depend_on_the_slides_orientation(tmp_path):
    """Lite2 with its ImageNet weights: plain scores change when the image
    is rotated, TTA scores do not, and they are the mean over the views."""
    import rock_plugin  # noqa: F401
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from PIL import Image

    from rock_plugin.apis.tta import tta_config
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = Config.fromfile(QUICK)
    crop = dict(type='EfficientNetCenterCrop', crop_size=64,
                interpolation='bicubic')
    cfg.test_dataloader.dataset.pipeline[1] = crop
    cfg.tta_pipeline[1] = crop
    cfg.data_preprocessor.num_classes = 11
    cfg = tta_config(cfg)
    model = MODELS.build(dict(cfg.model,
                              data_preprocessor=cfg.data_preprocessor))
    model.module.init_weights()  # the packaged ImageNet backbone
    model.eval()
    tta = Compose(cfg.tta_pipeline)
    plain = Compose([*cfg.tta_pipeline[:-1], dict(type='PackInputs')])

    img = _square_png(str(tmp_path / 'a.png'), 1)
    Image.fromarray(np.ascontiguousarray(np.rot90(img))).save(
        str(tmp_path / 'a_rot.png'))

    def scores(pipeline, run, name):
        batch = pseudo_collate([pipeline(dict(img_path=str(tmp_path / name)))])
        with torch.no_grad():
            return run(batch)[0].pred_score.numpy()

    t0 = scores(tta, model.test_step, 'a.png')
    t1 = scores(tta, model.test_step, 'a_rot.png')
    p0 = scores(plain, model.module.test_step, 'a.png')
    p1 = scores(plain, model.module.test_step, 'a_rot.png')
    assert np.abs(p0 - p1).max() > 1e-3  # the model sees orientation
    np.testing.assert_allclose(t0, t1, atol=1e-5)  # TTA does not
    views = []
    for i, view in enumerate(_dihedral(img)):
        Image.fromarray(np.ascontiguousarray(view)).save(
            str(tmp_path / f'v{i}.png'))
        views.append(scores(plain, model.module.test_step, f'v{i}.png'))
    # LogMeanClsScoreTTA: the normalised geometric mean of the views
    log_mean = np.exp(np.mean(np.log(views), axis=0))
    np.testing.assert_allclose(t0, log_mean / log_mean.sum(), atol=1e-5)


def test_log_mean_tta_averages_the_logits_under_the_temperature():
    """The merged score is softmax(mean logits / T) for any T, so a fitted
    temperature means for TTA what it means for one view; views that agree
    give their common score; scores of 0 stay finite."""
    from mmpretrain.structures import DataSample

    from rock_plugin.models import LogMeanClsScoreTTA
    from mmengine.model import BaseModel

    class Model(BaseModel):
        def forward(self, *args, **kwargs):
            pass

    tta = LogMeanClsScoreTTA(module=Model())
    logits = torch.randn(8, 5) * 4
    for temperature in (1.0, 19.5):
        views = [DataSample().set_pred_score(
            torch.softmax(z / temperature, 0)) for z in logits]
        merged = tta.merge_preds([views])[0].pred_score
        want = torch.softmax(logits.mean(0) / temperature, 0)
        assert torch.allclose(merged, want, atol=1e-6)
        assert merged.sum().item() == pytest.approx(1.0)
    same = [DataSample().set_pred_score(torch.tensor([0.7, 0.3, 0.0]))] * 3
    merged = tta.merge_preds([same])[0].pred_score
    assert torch.allclose(merged, torch.tensor([0.7, 0.3, 0.0]), atol=1e-6)


def test_log_mean_tta_keeps_no_single_view_field():
    """The merged sample: merged scores (calibrated and raw), their argmax
    as the label, the ground truth and metainfo; no view's novelty,
    "unknown" flag or neighbours (predict.py's CSV showed the first view's
    under mmpretrain's ``new()``), so the tools report none."""
    from mmengine.model import BaseModel
    from mmpretrain.structures import DataSample

    from rock_plugin.models import LogMeanClsScoreTTA

    class Model(BaseModel):
        def forward(self, *args, **kwargs):
            pass

    tta = LogMeanClsScoreTTA(module=Model())
    views = []
    for i, score in enumerate(([0.6, 0.4], [0.2, 0.8], [0.3, 0.7])):
        view = DataSample(metainfo=dict(img_path='a.jpg')).set_gt_label(1)
        view.set_pred_score(torch.tensor(score)).set_pred_label(
            int(torch.tensor(score).argmax()))
        view.set_field(torch.tensor(score) ** 0.5, 'raw_score')
        view.set_field(torch.tensor(float(i)), 'novelty')
        view.set_field(i == 0, 'unknown')
        view.set_field(torch.tensor([3, 4]), 'neighbors')
        views.append(view)
    merged = tta.merge_preds([views])[0]
    assert merged.img_path == 'a.jpg' and int(merged.gt_label) == 1
    assert int(merged.pred_label) == 1  # the merged argmax, not view 0's
    assert merged.pred_score.argmax() == 1
    raw = torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.3, 0.7]]).sqrt().log()
    assert torch.allclose(merged.raw_score, torch.softmax(raw.mean(0), 0))
    for field in ('novelty', 'unknown', 'neighbors', 'neighbor_sims',
                  'feature'):
        assert field not in merged
