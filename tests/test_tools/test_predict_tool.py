"""tools/predict.py run as a user would: image, folder, video, bad inputs."""
import csv
import json
import os.path as osp
import shutil

import numpy as np
import pytest

from conftest import (TINY_CLASSES, TINY_CONFIG, load_tool, run_tool,
                      tiny_model)


@pytest.fixture(scope='module')
def model(tmp_path_factory, tiny_data):
    return tiny_model(tmp_path_factory, tiny_data)


@pytest.fixture(scope='module')
def reference(model, tiny_data):
    """In-process predictions of every tiny image, keyed by file."""
    from rock_plugin.apis.inferencer import RockInferencer, list_images
    inferencer = RockInferencer(TINY_CONFIG, model['calibrated'])
    return {r['file']: r for r in inferencer(list_images(tiny_data))}


def _predict(model, *args, check=True):
    return run_tool('tools/predict.py', TINY_CONFIG, model['calibrated'],
                    *args, check=check)


def _table_rows(stdout):
    """The printed table's rows: (file, class, score)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith('file '))
    rows = []
    for line in lines[start + 1:]:
        if ' predicted, ' in line:
            break
        parts = line.split()
        rows.append((parts[0], parts[1], float(parts[2])))
    return rows


def test_one_image(model, tiny_data, reference):
    image = osp.join(tiny_data, 'beta', 'beta_3.jpg')
    proc = _predict(model, image, '--topk', '2')
    [(name, top1, score)] = _table_rows(proc.stdout)
    assert name == image
    assert top1 == reference[image]['pred_class']
    assert score == pytest.approx(reference[image]['pred_score'], abs=1e-3)
    assert '1 predicted, 0 failed' in proc.stdout
    assert 'Traceback' not in proc.stderr


def test_folder_with_bad_files_reports_them_and_predicts_the_rest(
        model, tiny_data, reference, tmp_path):
    folder = tmp_path / 'mixed'
    shutil.copytree(tiny_data, folder)
    good = sorted(str(p) for p in folder.rglob('*.jpg'))
    corrupt = folder / 'alpha' / 'corrupt.jpg'
    corrupt.write_bytes(open(good[0], 'rb').read()[:300])  # truncated JPEG
    text = folder / 'beta' / 'readme.jpg'
    text.write_text('a text file named .jpg')
    (folder / 'notes.txt').write_text('ignored: not an image extension')
    out = tmp_path / 'preds.csv'
    proc = _predict(model, str(folder), '--batch-size', '4', '--topk', '3',
                    '--out', str(out))
    assert proc.returncode == 0
    assert f'skipped {corrupt}' in proc.stderr
    assert f'skipped {text}' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert '24 predicted, 2 failed' in proc.stdout
    rows = _table_rows(proc.stdout)
    # sorted, relative to the folder, bad ones left out
    assert [r[0] for r in rows] == [osp.relpath(p, folder) for p in good]

    with open(out, newline='') as f:
        table = list(csv.DictReader(f))
    assert [r['file'] for r in table] == good
    assert list(table[0]) == ['file', 'pred_label', 'pred_class',
                              'pred_score', 'topk', 'answer', 'novelty',
                              'unknown', 'neighbor1', 'neighbor2',
                              'neighbor3'] + \
        [f'score/{c}' for c in TINY_CLASSES]
    for row in table:
        ref = reference[row['file'].replace(str(folder), tiny_data)]
        assert row['pred_class'] == ref['pred_class']
        assert float(row['pred_score']) == pytest.approx(ref['pred_score'],
                                                         abs=1e-5)
        topk = [item.split(':') for item in row['topk'].split(';')]
        assert [c for c, _ in topk] == [c for c, _ in ref['topk']]
        scores = [float(row[f'score/{c}']) for c in TINY_CLASSES]
        assert sum(scores) == pytest.approx(1, abs=1e-4)


def test_video_every_n_frames_to_json(model, tmp_path):
    import cv2
    path = str(tmp_path / 'section.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             (56, 48))
    rng = np.random.default_rng(0)
    for i in range(25):
        frame = np.zeros((48, 56, 3), np.uint8)
        frame[..., i % 3] = 180
        writer.write(np.clip(frame + rng.integers(0, 60, frame.shape), 0,
                             255).astype(np.uint8))
    writer.release()
    out = tmp_path / 'video.json'
    proc = _predict(model, path, '--every-n', '10', '--out', str(out))
    assert '25 frames, every 10th' in proc.stdout
    assert '3 predicted, 0 failed' in proc.stdout
    doc = json.loads(out.read_text())
    files = [p['file'] for p in doc['predictions']]
    assert files == [f'{path}#frame={i}' for i in (0, 10, 20)]
    assert doc['classes'] == list(TINY_CLASSES)
    assert doc['count'] == dict(predicted=3, failed=0)
    assert doc['every_n'] == 10 and doc['backend'] == 'pytorch'
    first = doc['predictions'][0]
    assert first['pred_class'] == first['topk'][0][0]
    assert set(first['scores']) == set(TINY_CLASSES)


@pytest.mark.parametrize('case', ['missing', 'text', 'video', 'bad_out'])
def test_wrong_input_is_one_clear_error(model, tmp_path, tiny_data, case):
    """Checked in-process through run_cli (as the tool does), to keep the
    suite fast; test_missing_input_subprocess covers the real process."""
    run_cli = load_tool('_common').run_cli
    predict_main = load_tool('predict').main
    args = [TINY_CONFIG, model['calibrated']]
    if case == 'missing':
        target, expect = str(tmp_path / 'nope.jpg'), 'no such image'
    elif case == 'text':
        target = tmp_path / 'notes.jpg'
        target.write_text('hello')
        target, expect = str(target), 'not an image'
    elif case == 'video':
        target = tmp_path / 'clip.mp4'
        target.write_text('not a video')
        target, expect = str(target), 'cannot open the video'
    else:
        target = osp.join(tiny_data, 'alpha', 'alpha_0.jpg')
        expect = 'must end in .csv or .json'
        args += ['--out', str(tmp_path / 'preds.txt')]
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(predict_main, args[:2] + [target] + args[2:])
    assert code == 2
    lines = err.getvalue().splitlines()
    assert lines[0].startswith('error: ') and expect in lines[0]
    assert 'Traceback' not in err.getvalue()
    if case != 'bad_out':
        assert target in lines[0]


def test_missing_input_subprocess(model, tmp_path):
    missing = str(tmp_path / 'nothing_here')
    proc = _predict(model, missing, check=False)
    assert proc.returncode == 2
    assert f'error: {missing}: no such image, folder or video' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_folder_of_only_bad_files_fails(model, tmp_path):
    run_cli = load_tool('_common').run_cli
    predict_main = load_tool('predict').main
    folder = tmp_path / 'bad'
    folder.mkdir()
    (folder / 'a.jpg').write_text('x')
    (folder / 'b.png').write_bytes(b'\x89PNG\r\n\x1a\n')
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(predict_main, [TINY_CONFIG, model['calibrated'],
                                      str(folder)])
    assert code == 2
    assert err.getvalue().count('skipped ') == 2
    assert 'nothing could be predicted' in err.getvalue()
    empty = tmp_path / 'empty'
    empty.mkdir()
    with contextlib.redirect_stderr(err):
        assert run_cli(predict_main, [TINY_CONFIG, model['calibrated'],
                                      str(empty)]) == 2
    assert 'no images in this folder' in err.getvalue()
