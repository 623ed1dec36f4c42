"""Outputs never overwrite or mix with inputs (issue 20): predict.py,
test.py and vis_cam.py refuse an output folder in the input tree, predict
keeps a.jpg and a.png apart, export_onnx.py never replaces its checkpoint.
Run as a user would, on the shipped quick start and its export."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from conftest import DEMO_DATA, run_tool, snapshot


def _refused(proc, flag):
    """Exit code 2 and one error line that names ``flag``."""
    errors = [ln for ln in proc.stderr.splitlines()
              if ln.startswith('error:')]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and flag in errors[0], proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    return errors[0]


@pytest.fixture
def a_jpg_and_a_png(tmp_path):
    """``a.jpg`` (a Chert) and ``a.png`` (a Bauxite) in one folder, and a
    sub-folder with one more image."""
    from rock_plugin.apis.inferencer import list_images
    folder = tmp_path / 'images'
    (folder / 'sub').mkdir(parents=True)
    shutil.copy(list_images(osp.join(DEMO_DATA, 'Chert'))[0],
                folder / 'a.jpg')
    bgr = cv2.imread(list_images(osp.join(DEMO_DATA, 'Bauxite'))[0])
    cv2.imwrite(str(folder / 'a.png'), bgr)
    shutil.copy(folder / 'a.jpg', folder / 'sub' / 'b.jpg')
    return folder


def test_predict_show_dir_in_the_input_tree_is_refused(quickstart_onnx,
                                                       a_jpg_and_a_png,
                                                       tmp_path):
    folder = a_jpg_and_a_png
    before = snapshot(folder)
    link = tmp_path / 'link'
    link.symlink_to(folder)
    for show_dir in (folder, folder / 'sub', link / 'shown'):
        proc = run_tool('tools/predict.py', '--onnx', quickstart_onnx,
                        str(folder), '--show-dir', str(show_dir),
                        check=False)
        line = _refused(proc, '--show-dir')
        assert 'input' in line
        assert snapshot(folder) == before  # byte for byte, nothing added
    # a single image: --show-dir may not be the image itself
    image = folder / 'a.jpg'
    proc = run_tool('tools/predict.py', '--onnx', quickstart_onnx,
                    str(image), '--show-dir', str(image), check=False)
    _refused(proc, '--show-dir')
    assert snapshot(folder) == before


def test_predict_keeps_a_jpg_and_a_png_apart(quickstart_onnx,
                                             a_jpg_and_a_png, tmp_path):
    from rock_plugin.visualization.annotate import annotate_result
    folder = a_jpg_and_a_png
    before = snapshot(folder)
    shown, out = tmp_path / 'shown', tmp_path / 'preds.json'
    run_tool('tools/predict.py', '--onnx', quickstart_onnx, str(folder),
             '--show-dir', str(shown), '--out', str(out))
    assert snapshot(folder) == before
    assert sorted(snapshot(shown)) == ['a.jpg.jpg', 'a.png.jpg',
                                        'sub/b.jpg.jpg']
    with open(out, encoding='utf-8') as f:
        doc = json.load(f)
    preds = {osp.relpath(p['file'], folder): p for p in doc['predictions']}
    # Each picture is its own image with its own top-k and evidence, not
    # the other's.
    drawn = {}
    for name in ('a.jpg', 'a.png'):
        rgb = cv2.imread(str(folder / name))[..., ::-1]
        drawn[name] = annotate_result(
            rgb, preds[name], doc['unknown_threshold']).astype(int)
    for name in ('a.jpg', 'a.png'):
        saved = cv2.imread(str(shown / f'{name}.jpg'))[..., ::-1]
        other = 'a.png' if name == 'a.jpg' else 'a.jpg'
        assert saved.shape == drawn[name].shape
        own = np.abs(saved - drawn[name]).mean()
        assert own < 3  # JPEG noise only
        if saved.shape == drawn[other].shape:
            assert np.abs(saved - drawn[other]).mean() > 10 * own


def test_export_onnx_never_replaces_its_inputs(quickstart_model, tmp_path):
    config = quickstart_model['config']
    # A checkpoint whose name ends in .onnx, and a hard link to it.
    ckpt = tmp_path / 'ck.onnx'
    shutil.copy(quickstart_model['checkpoint'], ckpt)
    os.link(ckpt, tmp_path / 'same.onnx')
    images = tmp_path / 'check'
    images.mkdir()
    before = ckpt.read_bytes()
    for out, extra in ((ckpt, ()), (tmp_path / 'same.onnx', ()),
                       (images / 'm.onnx', ('--check-images', str(images)))):
        proc = run_tool('tools/export_onnx.py', config, str(ckpt), '--out',
                        str(out), *extra, check=False)
        _refused(proc, '--out')
        assert ckpt.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ['check', 'ck.onnx', 'same.onnx']
    assert os.listdir(images) == []


def test_test_show_dir_inside_the_data_is_refused(quickstart_model,
                                                  tmp_path):
    from rock_plugin.apis.inferencer import list_images
    data = tmp_path / 'data'
    for cls in ('Chert', 'Bauxite'):
        (data / cls).mkdir(parents=True)
        for path in list_images(osp.join(DEMO_DATA, cls))[:5]:
            shutil.copy(path, data / cls)
    before = snapshot(data)
    proc = run_tool('tools/test.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], '--device', 'cpu',
                    '--data-root', str(data), '--work-dir',
                    str(tmp_path / 'work'), '--show-dir',
                    str(data / 'Chert'), check=False)
    assert 'input folder' in _refused(proc, '--show-dir')
    assert snapshot(data) == before


def test_vis_cam_out_dir_inside_the_input_is_refused(quickstart_model,
                                                     a_jpg_and_a_png):
    folder = a_jpg_and_a_png
    before = snapshot(folder)
    proc = run_tool('tools/vis_cam.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], str(folder), '--out-dir',
                    str(folder / 'cams'), check=False)
    _refused(proc, '--out-dir')
    assert snapshot(folder) == before
