"""tools/export_onnx.py: one self-contained file, metadata, parity, batch."""
import json
import os
import re
import shutil

import numpy as np
import pytest

from conftest import (TINY_CLASSES, TINY_CONFIG, load_tool, run_tool,
                      tiny_model)


@pytest.fixture(scope='module')
def model(tmp_path_factory, tiny_data):
    return tiny_model(tmp_path_factory, tiny_data)


@pytest.fixture(scope='module')
def exported(model, tiny_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp('onnx')
    out = folder / 'tiny.onnx'
    proc = run_tool('tools/export_onnx.py', TINY_CONFIG, model['calibrated'],
                    '--out', str(out), '--check-images', tiny_data)
    return out, proc


def test_export_is_one_file_with_metadata(exported):
    import onnx
    out, proc = exported
    # self-contained: no external .data file beside it, no temp leftovers
    assert os.listdir(out.parent) == ['tiny.onnx']
    proto = onnx.load(str(out))
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL
                   for t in proto.graph.initializer)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta['classes']) == list(TINY_CLASSES)
    assert json.loads(meta['input_shape']) == ['batch', 3, 32, 32]
    assert meta['input_channel_order'] == 'RGB'
    assert 'not normalised' in meta['input_format']
    norm = json.loads(meta['normalisation'])
    assert norm['mean'] == pytest.approx([123.675, 116.28, 103.53])
    assert norm['std'] == pytest.approx([58.395, 57.12, 57.375])
    assert json.loads(meta['test_pipeline'])[1]['type'] == \
        'EfficientNetCenterCrop'
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32,
                                                                      32]
    assert 'classes: alpha, beta, gamma' in proc.stdout


def test_parity_is_printed_and_within_tolerance(exported):
    _, proc = exported
    found = re.search(r'max abs diff of scores (\S+) on (\d+) images',
                      proc.stdout)
    assert found, proc.stdout
    assert float(found.group(1)) <= 1e-4
    assert int(found.group(2)) == 16  # spread over the 24 tiny images
    assert 'batch sizes 1, 3 OK' in proc.stdout


def test_dynamic_batch_and_file_works_alone(exported, model, tiny_data,
                                            tmp_path):
    import onnxruntime as ort

    from rock_plugin.apis.inferencer import (RockInferencer, list_images,
                                             onnx_input)
    out, _ = exported
    alone = tmp_path / 'copied.onnx'
    shutil.copy(out, alone)  # nothing else travels with it
    session = ort.InferenceSession(str(alone),
                                   providers=['CPUExecutionProvider'])
    torch_side = RockInferencer(TINY_CONFIG, model['calibrated'])
    samples = [torch_side.load(f)[1] for f in list_images(tiny_data)[:7]]
    batch = onnx_input(samples)
    reference = torch_side._forward_pytorch(samples)
    for size in (1, 3, 7):
        scores = session.run(None, {'input': batch[:size]})[0]
        assert scores.shape == (size, 3)
        np.testing.assert_allclose(scores, reference[:size], atol=1e-4)
        np.testing.assert_allclose(scores.sum(1), 1, atol=1e-5)


def test_onnxruntime_backend_gives_the_same_top1(exported, model, tiny_data,
                                                 tmp_path):
    from rock_plugin.apis.inferencer import RockInferencer, list_images
    out, _ = exported
    images = list_images(tiny_data)
    torch_side = RockInferencer(TINY_CONFIG, model['calibrated'])
    expected = torch_side(images)
    # checkpoint=None: class names come from the ONNX metadata
    onnx_side = RockInferencer(TINY_CONFIG, None, backend='onnxruntime',
                               onnx_model=str(out), batch_size=5)
    assert onnx_side.classes == list(TINY_CLASSES)
    got = onnx_side(images)
    assert [r['pred_class'] for r in got] == \
        [r['pred_class'] for r in expected]
    for a, b in zip(got, expected):
        assert a['file'] == b['file']
        np.testing.assert_allclose(list(a['scores'].values()),
                                   list(b['scores'].values()), atol=1e-4)

    preds = tmp_path / 'onnx.json'
    run_tool('tools/predict.py', TINY_CONFIG, model['calibrated'], tiny_data,
             '--backend', 'onnxruntime', '--onnx', str(out), '--out',
             str(preds))
    doc = json.loads(preds.read_text())
    assert doc['backend'] == 'onnxruntime'
    assert [p['file'] for p in doc['predictions']] == images
    assert [p['pred_class'] for p in doc['predictions']] == \
        [r['pred_class'] for r in expected]


def test_parity_failure_is_reported(exported, model, tiny_data):
    """An ONNX file that does not match the PyTorch model fails the check."""
    from rock_plugin.apis.inferencer import RockInferencer, list_images
    from rock_plugin.apis.onnx_export import OnnxParityError, check_parity
    out, _ = exported
    # the trained checkpoint differs from the calibrated one that was
    # exported (BN statistics), so the scores disagree
    other = RockInferencer(TINY_CONFIG, model['trained'])
    with pytest.raises(OnnxParityError, match=r'differ from PyTorch by'):
        check_parity(other, str(out), list_images(tiny_data)[:4], (32, 32))


def test_torchscript_exporter_generated_images_and_errors(model, tmp_path):
    run_cli = load_tool('_common').run_cli
    from rock_plugin.apis.onnx_export import export_onnx
    main = load_tool('export_onnx').main
    out = tmp_path / 'ts.onnx'
    report = export_onnx(TINY_CONFIG, model['calibrated'], str(out),
                         exporter='torchscript')
    assert report['images'] == 3  # generated, none given
    assert report['max_abs_diff'] <= 1e-4
    assert report['batch_sizes'] == [1, 3]
    assert os.listdir(tmp_path) == ['ts.onnx']
    import contextlib
    import io
    for args, expect in (
            (['--out', str(tmp_path / 'x.txt')], 'must end in .onnx'),
            (['--check-images', str(tmp_path / 'nope')], 'no such image'),
    ):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = run_cli(main, [TINY_CONFIG, model['calibrated'], *args])
        assert code == 2 and expect in err.getvalue()
        assert 'Traceback' not in err.getvalue()


def test_bad_check_image_fails_before_the_export(model, tmp_path,
                                                 monkeypatch):
    """--check-images are read first: an unreadable one fails in seconds,
    not after the export (tens of seconds for B4), and writes nothing."""
    import contextlib
    import io

    from rock_plugin.apis import onnx_export
    run_cli = load_tool('_common').run_cli
    exports = []
    monkeypatch.setattr(onnx_export, '_export_graph',
                        lambda *a, **k: exports.append(a))
    folder = tmp_path / 'check'
    folder.mkdir()
    bad = folder / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    out = tmp_path / 'out' / 'm.onnx'
    err = io.StringIO()
    with contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(load_tool('export_onnx').main,
                       [TINY_CONFIG, model['calibrated'], '--out', str(out),
                        '--check-images', str(folder)])
    assert code == 2
    assert f'error: {bad}: ' in err.getvalue()
    assert 'Traceback' not in err.getvalue()
    assert exports == []  # never started
    assert not out.parent.exists() or os.listdir(out.parent) == []
