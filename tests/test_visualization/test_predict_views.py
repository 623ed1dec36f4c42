"""tools/predict.py: --show-dir (and --cam), annotated videos, --onnx alone."""
import csv
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from conftest import DEMO_DATA, run_tool


def _rows(path):
    with open(path, newline='') as f:
        return {osp.basename(r['file']): r for r in csv.DictReader(f)}


@pytest.fixture(scope='module')
def two_images(tmp_path_factory):
    from rock_plugin.apis.inferencer import list_images
    folder = tmp_path_factory.mktemp('images')
    for cls in ('Chert', 'Bauxite'):
        (folder / cls).mkdir()
        shutil.copy(list_images(osp.join(DEMO_DATA, cls))[0], folder / cls)
    return folder


def test_show_dir_with_cam_and_onnx_alone(quickstart_model, two_images,
                                          tmp_path):
    cfg, ckpt = quickstart_model['config'], quickstart_model['checkpoint']
    shown = tmp_path / 'shown'
    run_tool('tools/predict.py', cfg, ckpt, str(two_images), '--show-dir',
             str(shown), '--cam', '--topk', '3', '--out',
             str(tmp_path / 'torch.csv'))
    for src in two_images.rglob('*.jpg'):
        rel = f'{src.relative_to(two_images)}.jpg'  # a.jpg -> a.jpg.jpg
        img = cv2.imread(str(shown / rel))
        assert img is not None, rel
        # the image and its Grad-CAM overlay side by side, 448 px each,
        # then the 160 px column of the most similar training images
        assert img.shape[1] == 2 * 448 + 160 + 4 * 4
        right = img[4:100, 448 + 8:448 + 100].reshape(-1, 3).astype(int)
        assert right.std(0).max() > 10  # a heat map, not blank

    # The exported model alone: no config, no checkpoint.
    onnx = tmp_path / 'model.onnx'
    # (the legacy exporter: half the CPU time; test_export_onnx covers both)
    run_tool('tools/export_onnx.py', cfg, ckpt, '--out', str(onnx),
             '--exporter', 'torchscript')
    proc = run_tool('tools/predict.py', '--onnx', str(onnx), str(two_images),
                    '--out', str(tmp_path / 'onnx.csv'))
    assert 'onnxruntime' in proc.stdout
    torch_rows = _rows(tmp_path / 'torch.csv')
    onnx_rows = _rows(tmp_path / 'onnx.csv')
    assert torch_rows.keys() == onnx_rows.keys() and len(onnx_rows) == 2
    for name, row in onnx_rows.items():
        assert row['pred_class'] == torch_rows[name]['pred_class']
        assert abs(float(row['pred_score']) -
                   float(torch_rows[name]['pred_score'])) < 1e-4

    proc = run_tool('tools/predict.py', '--onnx', str(onnx), str(two_images),
                    '--show-dir', str(shown), '--cam', check=False)
    assert proc.returncode == 2 and '--cam' in proc.stderr


def test_video_gives_an_annotated_video(quickstart_model, tmp_path):
    from rock_plugin.apis.inferencer import list_images
    video = str(tmp_path / 'section.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 10,
                             (280, 224))
    frames = [cv2.resize(cv2.imread(list_images(osp.join(DEMO_DATA, c))[0]),
                         (280, 224)) for c in ('Chert', 'Bauxite')]
    for frame in frames:
        for _ in range(10):
            writer.write(frame)
    writer.release()
    out = tmp_path / 'out' / 'preds.csv'
    proc = run_tool('tools/predict.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], video, '--every-n', '5',
                    '--out', str(out))
    annotated = tmp_path / 'out' / 'preds_annotated.mp4'
    assert f'wrote {annotated} (4 frames)' in proc.stdout
    rows = list(csv.DictReader(open(out, newline='')))
    assert len(rows) == 4
    capture = cv2.VideoCapture(str(annotated))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(2.0)
    got = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        got.append(frame)
    assert len(got) == 4 and got[0].shape == (224, 280, 3)
    # Top-left: the translucent box with the classes over the frame;
    # bottom-right: the frame itself (video compression aside).
    box, rest = (slice(0, 30), slice(0, 140)), (slice(150, 224),
                                                slice(150, 280))
    assert np.abs(got[0][box].astype(int) - frames[0][box]).mean() > 25
    assert np.abs(got[3][rest].astype(int) -
                  frames[1][rest]).mean() < 12
