"""The speed paths give the plain path's numbers: fused frozen backbone,
cached validation features, reduced-size/cached decoding, feature-cache mode."""
import contextlib
import copy
import csv
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import (REPO, TINY_CONFIG, load_tool, make_class_folders,
                      run_tool)
from rock_plugin.apis.train import build_runner
from rock_plugin.datasets.transforms.loading import (LoadImageWithPreResize,
                                                     read_rgb)
from rock_plugin.models.accel import (FrozenEngine, build_fast_frozen_copy,
                                     default_engine, plain_forward,
                                     use_frozen_engine)

FEATCACHE_CONFIG = osp.join(osp.dirname(TINY_CONFIG), 'tiny_featcache.py')


def _b0_classifier(frozen_engine='auto', channels_last=True, **extra):
    from mmpretrain.registry import MODELS
    import rock_plugin  # noqa: F401  (registers RockImageClassifier)
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='RockImageClassifier', freeze_backbone=True,
        frozen_engine=frozen_engine, channels_last=channels_last, **extra,
        backbone=dict(type='EfficientNet', arch='b0'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=1280)))
    # random BN statistics, so that folding them is really exercised
    for m in model.backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


# -- the fused frozen backbone ------------------------------------------------
def test_fused_copy_equals_the_backbone_and_leaves_it_untouched():
    model = _b0_classifier()
    backbone = model.backbone
    before = copy.deepcopy(backbone.state_dict())
    fast, folded = build_fast_frozen_copy(backbone)
    assert folded > 40  # every conv+BN(+act) of B0
    x = torch.randn(3, 3, 64, 72)  # odd sizes exercise dynamic padding
    with torch.no_grad():
        ref = backbone(x)[-1]
        out = fast(x.contiguous(memory_format=torch.channels_last))[-1]
    assert out.shape == ref.shape
    scale = ref.abs().max().item()
    assert (out - ref).abs().max().item() <= 1e-4 * scale
    after = backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the copy is not a submodule: checkpoints keep the stock keys
    assert not any('fast' in k for k in model.state_dict())


# Exact engines agree with the plain backbone to float32 rounding; bf16 to
# its stated tolerance (docs/benchmark.md). 'compile' (not the default) takes
# minutes to compile on 2 cores: `tools/analysis/benchmark.py --engines`
# checks it.
@pytest.mark.parametrize('engine,tolerance', [
    ('eager', 1e-4), ('onnxruntime', 1e-4), ('bf16', 3e-2)])
def test_engines_give_the_plain_backbones_features(engine, tolerance):
    backbone = _b0_classifier().backbone
    x = torch.randn(5, 3, 64, 72)
    runner = FrozenEngine(backbone, engine, micro_batch=2)  # 2 + 2 + 1
    with torch.no_grad():
        ref = backbone(x)[-1]
        out = runner(x)[-1]
        again = runner(x[:3])[-1]  # one engine call, fewer images
    assert runner.engine == engine and out.dtype == torch.float32
    scale = ref.abs().max().item()
    assert (out - ref).abs().max().item() <= tolerance * scale
    assert (again - ref[:3]).abs().max().item() <= tolerance * scale
    if engine == 'onnxruntime':
        assert list(runner._sessions) == [(3, 64, 72)]  # really ran ORT
    # autograd on (Grad-CAM): the eager copy runs and gradients flow
    x.requires_grad_()
    runner(x)[-1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_default_engine_is_the_fastest_exact_one_and_predicts_the_same():
    # the fastest exact engine measured (docs/benchmark.md)
    assert default_engine('cpu') == 'onnxruntime'
    assert default_engine('cuda') == 'eager'
    fast = _b0_classifier('auto')
    plain = _b0_classifier(None)
    x = torch.randn(6, 3, 48, 48)
    with torch.no_grad():
        a = fast(x, mode='tensor').softmax(1)
        b = plain(x, mode='tensor').softmax(1)
    assert fast._fast_state[1].engine == 'onnxruntime'
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert (a - b).abs().max().item() < 1e-4
    # a copied model (EMA, export tools) builds its own engine
    copied = copy.deepcopy(fast)
    with torch.no_grad():
        assert torch.allclose(copied(x, mode='tensor').softmax(1), a,
                              atol=1e-5)
    # --amp on CPU (bfloat16 autocast): the eager copy runs under it
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        c = fast(x, mode='tensor').float().softmax(1)
    assert (c - b).abs().max().item() < 0.05


def test_classifier_fast_and_plain_paths_agree_and_follow_new_weights():
    fast = _b0_classifier('auto')
    plain = _b0_classifier(None)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(4, 3, 48, 48)
    with torch.no_grad():
        a, b = fast.extract_feat(x), plain.extract_feat(x)
        np.testing.assert_allclose(a[-1].numpy(), b[-1].numpy(), atol=1e-4)
        assert fast._fast_state is not None  # the fused copy really ran
        # new weights (load_state_dict bumps version counters): rebuilt
        state = {k: v.clone() for k, v in fast.state_dict().items()}
        for k in state:
            if k.endswith('conv.weight') and 'backbone' in k:
                state[k] = state[k] * 1.5
        fast.load_state_dict(state)
        plain.load_state_dict(state)
        a2, b2 = fast.extract_feat(x), plain.extract_feat(x)
        assert not torch.allclose(a2[-1], a[-1], atol=1e-3)
        np.testing.assert_allclose(a2[-1].numpy(), b2[-1].numpy(), atol=1e-4)
        # writes through .data bypass version counters: reset_fast_path
        for p in fast.backbone.parameters():
            p.data.mul_(0.5)
        fast.reset_fast_path()
        plain.load_state_dict(fast.state_dict())
        np.testing.assert_allclose(fast.extract_feat(x)[-1].numpy(),
                                   plain.extract_feat(x)[-1].numpy(),
                                   atol=1e-4)


def test_fast_path_stays_out_of_training_mode_and_tracing():
    model = _b0_classifier()
    x = torch.randn(1, 3, 32, 32)
    model.train()  # RockImageClassifier keeps a frozen backbone in eval
    assert not model.backbone.training
    assert model.fast_backbone(x) is not None
    model.backbone.train()  # forced: BN would update, the copy must not run
    assert model.fast_backbone(x) is None
    model.eval()
    traced = torch.jit.trace(lambda t: model.extract_feat(t)[-1], x,
                             check_trace=False)
    graph = str(traced.graph)
    assert 'batch_norm' in graph  # the plain backbone was traced


# -- the engine, named in the configs -----------------------------------------
SHIPPED = ('rock_b4.py', 'rock_quickstart.py', 'rock_b4_featcache.py')


def _build(model_cfg):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    import rock_plugin  # noqa: F401
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(model_cfg).eval()


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_configs_name_the_frozen_engine(name):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    assert cfg.model.frozen_engine == 'auto'
    assert 'fast_frozen' not in cfg.model


@pytest.mark.parametrize('base', ['efficientnet_b4_frozen.py',
                                  'efficientnet_lite2_multiscale.py'])
def test_shipped_models_pick_the_engine_they_picked_before(base):
    """Written out, with a comment, in each model base file; and it picks
    the engine the unnamed default (``fast_frozen=True``) picked."""
    from mmengine.config import Config
    path = osp.join(REPO, 'configs', '_base_', 'models', base)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    assert "frozen_engine='auto'," in text and 'plain' in text
    model_cfg = Config.fromfile(path).model
    model_cfg.backbone.pop('init_cfg', None)  # no download
    x = torch.rand(2, 3, 64, 64)
    picked = []
    for cfg in (model_cfg, dict(model_cfg, frozen_engine='auto',
                                fast_frozen=True)):
        with pytest.warns(DeprecationWarning) if 'fast_frozen' in cfg \
                else contextlib.nullcontext():
            model = _build(cfg)
        with torch.no_grad():
            model.extract_feat(x)
        picked.append(model._fast_state[1].engine)
    assert picked == [default_engine('cpu')] * 2 == ['onnxruntime'] * 2


def test_engine_off_is_the_plain_mmpretrain_forward():
    from mmengine.config import Config
    from mmpretrain.models import ImageClassifier
    model_cfg = Config.fromfile(TINY_CONFIG).model
    model_cfg.frozen_engine = None
    ours = _build(model_cfg)
    assert ours.frozen_engine is None
    stock_cfg = {k: v for k, v in model_cfg.items() if k not in (
        'type', 'freeze_backbone', 'frozen_engine', 'channels_last')}
    stock = _build(dict(stock_cfg, type='ImageClassifier'))
    assert type(stock) is ImageClassifier
    stock.load_state_dict(ours.state_dict())
    calls = []
    ours.backbone.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x, mode='tensor'), stock(x, mode='tensor'))
    assert calls == [1] and ours._fast_state is None
    assert ours.fast_backbone(x) is None


def test_old_configs_with_fast_frozen_build_the_same(tmp_path):
    """A config saved with ``fast_frozen=`` (the field's old name) builds
    the same model, with a DeprecationWarning."""
    from mmengine.config import Config
    x = torch.rand(2, 3, 32, 32)
    saved = Config.fromfile(TINY_CONFIG)
    del saved.model['frozen_engine']  # saved before the field had a name
    for old, new, ran in ((True, 'auto', 'onnxruntime'), (False, None, None),
                          ('eager', 'eager', 'eager')):
        saved.model.fast_frozen = old
        path = str(tmp_path / 'saved.py')
        saved.dump(path)
        with pytest.warns(DeprecationWarning, match='frozen_engine'):
            model = _build(Config.fromfile(path).model)
        renamed = {k: v for k, v in saved.model.items() if k != 'fast_frozen'}
        reference = _build(dict(renamed, frozen_engine=new))
        assert model.frozen_engine == reference.frozen_engine == new
        assert model.fast_frozen == old  # the old attribute reads the same
        with torch.no_grad():
            assert torch.equal(model(x, mode='tensor'),
                               reference(x, mode='tensor'))
        assert [m._fast_state and m._fast_state[1].engine
                for m in (model, reference)] == [ran, ran]
    # on top of a shipped config's frozen_engine='auto'
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.merge_from_dict({'model.fast_frozen': False})
    with pytest.warns(DeprecationWarning):
        assert _build(cfg.model).frozen_engine is None
    with pytest.raises(ValueError, match='disagree'), \
            pytest.warns(DeprecationWarning):
        _build(dict(cfg.model, frozen_engine=None, fast_frozen=True))
    with pytest.raises(ValueError, match='frozen_engine must be'):
        _build(dict(cfg.model, fast_frozen=None, frozen_engine='onnx'))


def test_plain_forward_and_use_frozen_engine_restore_the_model():
    model = _b0_classifier('auto')
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        model.extract_feat(x)
    copy_ = model._fast_state
    with plain_forward(model) as same:
        assert same is model and model.frozen_engine is None
        assert model.fast_backbone(x) is None
    assert model.frozen_engine == 'auto'
    assert model._fast_state is copy_  # kept: no rebuild when back on
    with pytest.raises(KeyError), use_frozen_engine(model, 'eager'):
        assert model.frozen_engine == 'eager'
        raise KeyError  # restored on errors too
    assert model.frozen_engine == 'auto'
    with use_frozen_engine(model, rebuild=True):
        assert model._fast_state is None and model.frozen_engine == 'auto'
    # a model without an engine (stock mmpretrain) is left alone
    from mmpretrain.models import ImageClassifier
    stock = ImageClassifier(backbone=dict(type='EfficientNet', arch='b0'))
    with plain_forward(stock) as same:
        assert same is stock and not hasattr(stock, 'frozen_engine')


# -- cached validation features ---------------------------------------------
def _history(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def cached_and_plain_runs(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp('val_cache')
    runs = {}
    for name, opts in [
            ('cached', []),
            ('plain', ['val_cfg.type=ValLoop']),
            ('unfused', ['val_cfg.type=ValLoop', 'model.frozen_engine=None'])
    ]:
        work = str(root / name)
        proc = run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu',
                        '--seed', '3', '--deterministic', '--data-root',
                        tiny_data, '--work-dir', work, '--cfg-options',
                        'train_cfg.max_epochs=3', *opts)
        runs[name] = (work, proc.stdout + proc.stderr)
    return runs


def test_cached_validation_metrics_equal_the_plain_loop_exactly(
        cached_and_plain_runs):
    cached_work, log = cached_and_plain_runs['cached']
    plain_work, _ = cached_and_plain_runs['plain']
    assert 'cached at the neck output' in log
    cached = _history(osp.join(cached_work, 'history.csv'))
    plain = _history(osp.join(plain_work, 'history.csv'))
    assert len(cached) == len(plain) == 3
    assert all(row['val_loss'] for row in cached)  # val_loss compared too
    for row_c, row_p in zip(cached, plain):
        row_c.pop('time', None), row_p.pop('time', None)
        assert row_c == row_p  # every column, as written: exactly equal
    ckpt_c = torch.load(osp.join(cached_work, 'epoch_3.pth'),
                        weights_only=True)['state_dict']
    ckpt_p = torch.load(osp.join(plain_work, 'epoch_3.pth'),
                        weights_only=True)['state_dict']
    assert all(torch.equal(ckpt_c[k], ckpt_p[k]) for k in ckpt_c)


def test_fused_path_trains_like_the_unfused_one(cached_and_plain_runs):
    plain = _history(osp.join(cached_and_plain_runs['plain'][0],
                              'history.csv'))
    unfused = _history(osp.join(cached_and_plain_runs['unfused'][0],
                                'history.csv'))
    for row_f, row_u in zip(plain, unfused):
        assert row_f['accuracy/top1'] == row_u['accuracy/top1']
        assert float(row_f['train_loss']) == pytest.approx(
            float(row_u['train_loss']), abs=1e-4)


def _val_runner(tiny_data, work_dir, edit=None):
    from mmengine.config import Config
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.work_dir = work_dir
    flags = load_tool('_config_flags')
    flags.set_data_options(cfg, tiny_data)
    flags.set_seed(cfg, 0)
    # no history or checkpoint files: only the loop is under test
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = None
    if edit is not None:
        edit(cfg)
    runner = build_runner(cfg)
    runner.load_or_resume()
    return runner


def test_cache_is_rebuilt_when_weights_change(tmp_path):
    # its own copy of the tiny data: an image is edited below
    tiny_data = make_class_folders(str(tmp_path / 'data'))
    runner = _val_runner(tiny_data, str(tmp_path / 'w'))
    plain = _val_runner(tiny_data, str(tmp_path / 'p'),
                        lambda cfg: cfg.val_cfg.update(type='ValLoop'))

    def plain_metrics():
        plain.model.load_state_dict(runner.model.state_dict())
        return plain.val_loop.run()

    loop = runner.val_loop
    assert type(loop).__name__ == 'CachedFeatureValLoop'
    first = loop.run()
    assert loop.run() == first == plain_metrics()
    assert (loop.feature_passes, loop.cached_passes) == (1, 1)
    # a head change reuses the cached features
    with torch.no_grad():
        runner.model.head.fc.weight.copy_(
            torch.randn_like(runner.model.head.fc.weight))
    assert loop.run() == plain_metrics()
    assert (loop.feature_passes, loop.cached_passes) == (1, 2)
    # a backbone change written through .data (no version bump) is caught
    with torch.no_grad():
        for p in runner.model.backbone.parameters():
            p.data.mul_(0.9)
    assert loop.run() == plain_metrics()
    assert (loop.feature_passes, loop.cached_passes) == (2, 2)
    # so is an edited validation image (size/mtime in the key)
    path = runner.val_loop.dataloader.dataset.get_data_info(0)['img_path']
    Image.open(path).transpose(Image.FLIP_LEFT_RIGHT).resize(
        (60, 50)).save(path, quality=95)
    assert loop.run() == plain_metrics()
    assert (loop.feature_passes, loop.cached_passes) == (3, 2)


def test_validation_takes_the_open_set_hooks_features(tiny_data, tmp_path):
    """OpenSetCalibrationHook computes the validation features after the
    first training epoch; the first validation takes them instead of a
    second backbone pass, with the plain ValLoop's metrics. A later rebuild
    (the backbone changed) runs the backbone; features whose labels
    disagree are not taken."""
    from mmengine.hooks import Hook

    from rock_plugin.engine.hooks import OpenSetCalibrationHook
    runner = _val_runner(tiny_data, str(tmp_path / 'w'))
    plain = _val_runner(tiny_data, str(tmp_path / 'p'),
                        lambda cfg: cfg.val_cfg.update(type='ValLoop'))
    hook = OpenSetCalibrationHook()
    runner.register_hook(hook)
    hook.after_train_epoch(runner)
    loop = runner.val_loop
    found = hook.exact_neck_features(loop.dataloader.dataset)
    assert found is not None and len(found[1]) == len(
        loop.dataloader.dataset)
    assert hook.exact_neck_features(runner.train_dataloader.dataset) is None
    metrics = loop.run()
    assert (loop.feature_passes, loop.computed_batches) == (1, 0)
    assert "(OpenSetCalibrationHook's: no backbone pass)" in \
        loop._logged_reason
    plain.model.load_state_dict(runner.model.state_dict())
    assert metrics == plain.val_loop.run()
    # a changed backbone: the loop's own pass, never the hook's old features
    with torch.no_grad():
        for p in runner.model.backbone.parameters():
            p.data.mul_(0.9)
    changed = loop.run()
    assert (loop.feature_passes, loop.computed_batches) == (
        2, len(loop.dataloader))
    plain.model.load_state_dict(runner.model.state_dict())
    assert changed == plain.val_loop.run()

    class OtherLabels(Hook):
        def exact_neck_features(self, dataset):
            return found[0], [label + 1 for label in found[1]]

    other = _val_runner(tiny_data, str(tmp_path / 'o'))
    other.register_hook(OtherLabels())
    other.model.load_state_dict(runner.model.state_dict())
    assert other.val_loop.run() == metrics
    assert other.val_loop.computed_batches == len(other.val_loop.dataloader)


def test_cache_is_not_used_with_a_random_validation_pipeline(tiny_data,
                                                             tmp_path):
    def random_crop(cfg):
        cfg.val_dataloader.dataset.pipeline = [
            dict(type='LoadImageWithPreResize'),
            dict(type='RandomResizedCrop', scale=32),
            dict(type='PackInputs')]

    runner = _val_runner(tiny_data, str(tmp_path / 'r'), random_crop)
    loop = runner.val_loop
    loop.run(), loop.run()
    assert (loop.feature_passes, loop.cached_passes) == (0, 0)
    assert 'RandomResizedCrop' in loop._logged_reason


# -- decoding ------------------------------------------------------------------
def _photo(path, size=(640, 512)):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), np.uint8)
    img = Image.fromarray(base).resize(size, Image.BICUBIC)
    img.save(path, quality=92)
    return path


def test_reduced_size_decode_keeps_enough_pixels(tmp_path):
    path = _photo(str(tmp_path / 'p.jpg'))
    full = read_rgb(path)
    assert full.shape == (512, 640, 3)
    half = read_rgb(path, min_size=200)  # 1/2 keeps 256 >= 200
    assert half.shape == (256, 320, 3)
    assert read_rgb(path, min_size=400).shape == full.shape  # 1/2 too small
    # same picture, just fewer pixels
    small = np.asarray(Image.fromarray(full).resize((320, 256), Image.BOX),
                       np.float64)
    assert np.abs(small - half).mean() < 6


def test_pixel_cache_serves_the_same_pixels_and_follows_edits(tmp_path):
    path = _photo(str(tmp_path / 'p.jpg'))
    cache = str(tmp_path / 'cache')
    load = LoadImageWithPreResize(cache_dir=cache, pre_resize=128)
    first = load(dict(img_path=path))['img']
    assert min(first.shape[:2]) == 128
    files = [f for _, _, fs in os.walk(cache) for f in fs]
    assert len(files) == 1 and files[0].endswith('.npy')
    again = LoadImageWithPreResize(cache_dir=cache, pre_resize=128)(
        dict(img_path=path))['img']
    assert np.array_equal(first, again)
    _photo(path, size=(400, 300))  # the file is edited: a new key
    edited = load(dict(img_path=path))['img']
    assert edited.shape[:2] == (128, 171)
    assert len([f for _, _, fs in os.walk(cache) for f in fs]) == 2
    # no cache_dir: plain decode, read_rgb's pixels in mmcv's BGR order
    plain = LoadImageWithPreResize()(dict(img_path=path))['img']
    assert np.array_equal(plain, read_rgb(path)[..., ::-1])


# -- opt-in feature-cache training ----------------------------------------------
def test_feature_cache_mode_trains_the_head(tiny_data, tmp_path):
    work = str(tmp_path / 'fc')
    proc = run_tool('tools/train.py', FEATCACHE_CONFIG, '--device', 'cpu',
                    '--seed', '0', '--data-root', tiny_data, '--work-dir',
                    work)
    rows = _history(osp.join(work, 'history.csv'))
    assert len(rows) == 4
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    assert float(rows[-1]['accuracy/top1']) >= 50  # chance is 33 %
    log = proc.stdout + proc.stderr
    assert 'FeatureCacheTrainLoop' in log
    assert '(approximate mode: the head trains on these fixed views' in log
