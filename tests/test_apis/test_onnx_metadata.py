"""An ONNX file is data: its metadata is checked before anything is built
(rock_plugin/apis/onnx_metadata.py), so a crafted ``.onnx`` can neither run
code through mmengine's registry nor crash ``tools/predict.py --onnx``."""
import json
import os
import os.path as osp
import re

import pytest

from conftest import DEMO_DATA, run_tool


def craft(src, dst, changes=None, extra=()):
    """Copy the ONNX file ``src`` to ``dst`` with metadata ``changes``
    (key -> str, JSON-able value, or None to remove) and ``extra`` ``(key,
    value)`` entries appended (a key twice)."""
    import onnx
    model = onnx.load(src)
    meta = {p.key: p.value for p in model.metadata_props}
    for key, value in (changes or {}).items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    del model.metadata_props[:]
    for key, value in [*meta.items(), *extra]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(dst))
    return str(dst)


@pytest.fixture(scope='module')
def genuine(quickstart_onnx):
    """The shipped quick start's export: path, metadata and pipeline."""
    import onnx
    props = onnx.load(quickstart_onnx, load_external_data=False
                      ).metadata_props
    meta = {p.key: p.value for p in props}
    return dict(path=quickstart_onnx, meta=meta,
                pipeline=json.loads(meta['test_pipeline']))


@pytest.fixture(scope='module')
def image():
    from rock_plugin.apis.inferencer import list_images
    return list_images(osp.join(DEMO_DATA, 'Chert'))[0]


def test_genuine_export_is_accepted_and_predicts(genuine, image):
    from rock_plugin.apis.inferencer import RockInferencer
    from rock_plugin.apis.onnx_metadata import read_onnx_metadata
    checked = read_onnx_metadata(genuine['path'], genuine['meta'].items())
    # the loader's name as the exported config wrote it (exports made
    # before the rename carry LoadRockImage:
    # tests/test_engine/test_name_aliases.py)
    loader = genuine['pipeline'][0]['type']
    assert loader in ('LoadImageWithPreResize', 'LoadRockImage')
    assert checked['test_pipeline'] == genuine['pipeline'] == [
        dict(type=loader, pre_resize=256),
        dict(type='EfficientNetCenterCrop', crop_size=260,
             interpolation='bicubic'),
        dict(type='PackInputs')]
    assert checked['classes'] == json.loads(genuine['meta']['classes'])
    inferencer = RockInferencer.from_onnx(genuine['path'])
    result = inferencer(image)[0]
    assert len(inferencer.classes) == 11
    assert result['pred_class'] in inferencer.classes
    assert sum(result['scores'].values()) == pytest.approx(1, abs=1e-4)


def _pipeline(genuine, index, step):
    steps = list(genuine['pipeline'])
    steps[index] = step
    return steps


# (name, metadata changes as a function of the genuine pipeline, what the
# one-line message must name)
CASES = [
    ('dotted callable', lambda p: dict(test_pipeline=[
        *p[:2], dict(type='os.system', command='touch x'), p[2]]),
     'test_pipeline[2].type "os.system" is not an allowed transform'),
    ('mmpretrain prefix', lambda p: dict(test_pipeline=[
        p[0], dict(p[1], type='mmpretrain.EfficientNetCenterCrop'), p[2]]),
     'test_pipeline[1].type "mmpretrain.EfficientNetCenterCrop"'),
    ('registered, never exported', lambda p: dict(test_pipeline=[
        p[0], dict(type='ResizeEdge', scale=260), p[2]]),
     'test_pipeline[1].type "ResizeEdge" is not an allowed transform'),
    ('resize without its size', lambda p: dict(test_pipeline=[
        p[0], dict(type='Resize', backend='pillow'), p[2]]),
     'test_pipeline[1]: Resize out of place or without its size'),
    ('resize to a huge size', lambda p: dict(test_pipeline=[
        p[0], dict(type='Resize', scale=[380, 10 ** 9]), p[2]]),
     'test_pipeline[1].scale must be [w, h], ints 1-16384'),
    ('resize keeping the ratio', lambda p: dict(test_pipeline=[
        p[0], dict(type='Resize', scale=[380, 380], keep_ratio=True), p[2]]),
     'test_pipeline[1].keep_ratio is not an argument of Resize'),
    ('no type', lambda p: dict(test_pipeline=[p[0], {}, p[2]]),
     'test_pipeline[1].type null'),
    ('unknown argument', lambda p: dict(test_pipeline=[
        dict(p[0], cache_dir='/tmp/anywhere'), *p[1:]]),
     'test_pipeline[0].cache_dir is not an argument of Load'),
    ('bool for int', lambda p: dict(test_pipeline=[
        p[0], dict(p[1], crop_size=True), p[2]]),
     'test_pipeline[1].crop_size must be an int 1-16384, got true'),
    ('string for int', lambda p: dict(test_pipeline=[
        p[0], dict(p[1], crop_size='260'), p[2]]),
     'test_pipeline[1].crop_size must be an int 1-16384, got "260"'),
    ('huge size', lambda p: dict(test_pipeline=[
        dict(p[0], pre_resize=10 ** 9), *p[1:]]),
     'test_pipeline[0].pre_resize must be null or an int'),
    ('string not in set', lambda p: dict(test_pipeline=[
        p[0], dict(p[1], interpolation='os.system'), p[2]]),
     'test_pipeline[1].interpolation must be one of nearest'),
    ('no PackInputs last', lambda p: dict(test_pipeline=p[:2]),
     'test_pipeline[1]: EfficientNetCenterCrop out of place or without its '
     'size'),
    ('pipeline as dict', lambda p: dict(test_pipeline=p[0]),
     'test_pipeline must be a non-empty list of transforms'),
    ('pipeline as string', lambda p: dict(test_pipeline='LoadRockImage'),
     'metadata test_pipeline: not JSON'),
    ('deeply nested', lambda p: dict(test_pipeline='[' * 100000),
     'metadata test_pipeline: not JSON'),
    ('no pipeline', lambda p: dict(test_pipeline=None),
     'no test_pipeline in its metadata'),
    ('classes int', lambda p: dict(classes=5),
     'metadata classes must be a non-empty list of class names, got 5'),
    ('classes JSON string', lambda p: dict(classes=json.dumps('abc')),
     'metadata classes must be a non-empty list of class names, got "abc"'),
    ('classes bare string', lambda p: dict(classes='abc'),
     'metadata classes: not JSON'),
    ('classes non-string', lambda p: dict(classes=['Chert', 1]),
     'metadata classes[1] must be a non-empty string'),
    ('classes repeated', lambda p: dict(classes=['Chert', 'Chert']),
     'metadata classes[1] must be a non-empty string named once'),
    ('custom_imports', lambda p: dict(
        custom_imports=dict(imports=['os'])),
     'metadata "custom_imports" is not written by tools/export_onnx.py'),
    ('_base_', lambda p: dict(_base_=['evil.py']),
     'metadata "_base_" is not written by tools/export_onnx.py'),
]


@pytest.mark.parametrize('changes,expected', [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_metadata_is_one_clear_error(genuine, changes, expected):
    from rock_plugin.apis.onnx_metadata import read_onnx_metadata
    from rock_plugin.utils.errors import DataError
    meta = dict(genuine['meta'])
    for key, value in changes(genuine['pipeline']).items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value if isinstance(value, str) else \
                json.dumps(value)
    with pytest.raises(DataError) as info:
        read_onnx_metadata('evil.onnx', meta.items())
    message = str(info.value)
    assert message.startswith('evil.onnx: ') and expected in message
    assert '\n' not in message and len(message) < 300


OPEN_SET_CASES = [
    ('not an object', lambda o: [o], 'open_set must be an object'),
    ('extra field', lambda o: dict(o, type='os.system'),
     'open_set must be an object with exactly'),
    ('threshold string', lambda o: dict(o, unknown_threshold='1'),
     'open_set.unknown_threshold must be a number or null'),
    ('temperature zero', lambda o: dict(o, temperature=0),
     'open_set.temperature must be a positive number'),
    ('negative label', lambda o: dict(o, bank_labels=[-1] * len(
        o['bank_labels'])), 'open_set.bank_labels must be'),
    ('files of another bank', lambda o: dict(o, bank_files=['a.jpg']),
     'open_set.bank_files must be a list of file names, one per'),
]


@pytest.mark.parametrize('change,expected', [c[1:] for c in OPEN_SET_CASES],
                         ids=[c[0] for c in OPEN_SET_CASES])
def test_bad_open_set_metadata_is_one_clear_error(genuine, change, expected):
    from rock_plugin.apis.onnx_metadata import read_onnx_metadata
    from rock_plugin.utils.errors import DataError
    info = json.loads(genuine['meta']['open_set'])
    assert len(info['bank_files']) == len(info['bank_labels']) > 100
    checked = read_onnx_metadata('m.onnx', genuine['meta'].items())
    assert checked['open_set']['bank_labels'] == info['bank_labels']
    meta = dict(genuine['meta'], open_set=json.dumps(change(info)))
    with pytest.raises(DataError) as err:
        read_onnx_metadata('evil.onnx', meta.items())
    message = str(err.value)
    assert message.startswith('evil.onnx: ') and expected in message
    assert '\n' not in message and len(message) < 300


def test_key_twice_is_refused(genuine, tmp_path):
    from rock_plugin.apis.inferencer import RockInferencer
    from rock_plugin.utils.errors import DataError
    evil = craft(genuine['path'], tmp_path / 'twice.onnx',
                 extra=[('classes', json.dumps(['a', 'b']))])
    with pytest.raises(DataError, match='"classes" appears twice'):
        RockInferencer.from_onnx(evil)


def test_config_path_reads_only_checked_classes(genuine, quickstart_model,
                                                tmp_path):
    """With CONFIG, the pipeline comes from the config, but the ONNX class
    names are still data; their count must fit the model's output."""
    from rock_plugin.apis.inferencer import RockInferencer
    from rock_plugin.utils.errors import DataError
    config = quickstart_model['config']
    bad = craft(genuine['path'], tmp_path / 'classes.onnx', dict(classes=5))
    with pytest.raises(DataError, match=re.escape(
            f'{bad}: metadata classes must be')):
        RockInferencer(config, None, backend='onnxruntime', onnx_model=bad)
    three = craft(genuine['path'], tmp_path / 'three.onnx',
                  dict(classes=['a', 'b', 'c']))
    with pytest.raises(ValueError, match=re.escape(
            f'{three}: the model gives 11 scores per image but 3 class')):
        RockInferencer(config, None, backend='onnxruntime', onnx_model=three)
    # a metadata pipeline that is never read does not matter here
    unused = craft(genuine['path'], tmp_path / 'unused.onnx',
                   dict(test_pipeline=[dict(type='os.system')]))
    inferencer = RockInferencer(config, None, backend='onnxruntime',
                                onnx_model=unused)
    assert inferencer.classes == json.loads(genuine['meta']['classes'])


def test_checkpoint_class_names_are_data():
    from rock_plugin.apis.inferencer import _classes_from_checkpoint
    from rock_plugin.utils.errors import DataError

    def meta(**kwargs):
        return dict(meta=kwargs)
    assert _classes_from_checkpoint(
        meta(dataset_meta=dict(classes=('a', 'b')))) == ['a', 'b']
    assert _classes_from_checkpoint(meta(CLASSES=['x'])) == ['x']
    assert _classes_from_checkpoint(meta(dataset_meta=dict(classes=[])),
                                    'm.pth') is None
    for bad in (5, 'abc', ['a', None]):
        with pytest.raises(DataError,
                           match='m.pth: meta.dataset_meta.classes'):
            _classes_from_checkpoint(meta(dataset_meta=dict(classes=bad)),
                                     'm.pth')


@pytest.mark.parametrize('attack', ['os.system', 'builtins.open',
                                    'custom_imports', 'class_count'])
def test_crafted_onnx_through_predict(genuine, image, tmp_path, attack):
    """``tools/predict.py --onnx`` as a user runs it: one error line naming
    the file and key, nothing run, nothing written, no traceback."""
    from mmpretrain.registry import TRANSFORMS
    marker, victim = tmp_path / 'MARKER', tmp_path / 'victim.txt'
    victim.write_text('precious')
    steps = genuine['pipeline']
    if attack == 'os.system':
        # what the registry would run without the check (never called)
        assert TRANSFORMS.get('os.system') is os.system
        changes = dict(test_pipeline=[dict(type='os.system',
                                           command=f'touch {marker}'),
                                      *steps])
        key = 'test_pipeline[0].type "os.system"'
    elif attack == 'builtins.open':
        assert TRANSFORMS.get('builtins.open') is open
        changes = dict(test_pipeline=[*steps[:2], dict(
            type='builtins.open', file=str(victim), mode='w'), steps[2]])
        key = 'test_pipeline[2].type "builtins.open"'
    elif attack == 'custom_imports':
        changes = dict(custom_imports=dict(imports=['antigravity']))
        key = 'metadata "custom_imports" is not written'
    else:
        changes = dict(classes=['a', 'b', 'c'])
        key = 'the model gives 11 scores per image but 3 class names'
    evil = craft(genuine['path'], tmp_path / 'evil.onnx', changes)
    out = tmp_path / 'preds.csv'
    proc = run_tool('tools/predict.py', '--onnx', evil, image, '--out',
                    str(out), check=False)
    errors = [ln for ln in proc.stderr.splitlines()
              if ln.startswith('error:')]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and errors[0].startswith(f'error: {evil}: ')
    assert key in errors[0], errors[0]
    assert 'Traceback' not in proc.stderr
    assert not marker.exists() and not out.exists()
    assert victim.read_text() == 'precious'
