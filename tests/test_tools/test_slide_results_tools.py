"""tools/test.py and tools/predict.py ``--group-by`` (per-slide results) on
the shared quick-start model, run as a user would (subprocess)."""
import os.path as osp
import re
import shutil
from collections import defaultdict

import numpy as np
import pytest

from conftest import (DEMO_DATA, QUICKSTART, load_tool, read_csv_dicts,
                      read_json, run_tool)

ENV = dict(OMP_NUM_THREADS='1')
# <name><number>_<tile>, the documented default of --group-by alone
SLIDE = re.compile(r'^(.*\d)_[^_]+$')


def _slide(path):
    return SLIDE.match(osp.basename(path)).group(1)


def test_test_tool_per_slide_csv_and_accuracy(quickstart_model, tmp_path):
    results = tmp_path / 'results'
    proc = run_tool('tools/test.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], '--device', 'cpu',
                    '--work-dir', str(tmp_path / 'work'), '--results-dir',
                    str(results), '--mistakes', '0', '--group-by', '--pool',
                    'mean', env=ENV)
    preds = read_csv_dicts(results / 'prediction_results.csv')
    slides = read_csv_dicts(results / 'per_slide.csv')
    classes = [k[len('score/'):] for k in slides[0]
               if k.startswith('score/')]
    tiles = defaultdict(list)
    for p in preds:
        tiles[_slide(p['File'])].append(p)
    assert [s['slide'] for s in slides] == sorted(tiles)
    for s in slides:
        mine = tiles[s['slide']]
        mean = np.mean([[float(t[c]) for c in classes] for t in mine], 0)
        np.testing.assert_allclose(
            [float(s[f'score/{c}']) for c in classes], mean, atol=2e-6)
        assert int(s['tiles']) == len(mine)
        assert s['pred_class'] == classes[mean.argmax()]
        # one thin section per class folder: every tile has its label
        assert s['true_class'] == mine[0]['True_label']
        assert s['other_tiles'] == '0'
        assert s['correct'] == str(s['pred_class'] == s['true_class'])
    right = sum(s['correct'] == 'True' for s in slides)
    assert (f'slide accuracy: {100 * right / len(slides):.2f} % '
            f'({right}/{len(slides)} slides of {len(preds)} images; mean '
            'of tile probabilities): per_slide.csv') in proc.stdout


def test_test_tool_stops_before_testing_on_a_missed_name(
        quickstart_model, tmp_path):
    results = tmp_path / 'results'
    proc = run_tool('tools/test.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], '--device', 'cpu',
                    '--work-dir', str(tmp_path / 'work'), '--results-dir',
                    str(results), '--group-by', r'^Chert(\d+)_', env=ENV,
                    check=False)
    assert proc.returncode == 2
    error = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert len(error) == 1 and "--group-by '^Chert" in error[0]
    assert re.search(r'e\.g\. \w+\d+_\d+\.jpg', error[0])
    assert not (results / 'prediction_results.csv').exists()


@pytest.fixture
def tiles(tmp_path):
    """3 tiles of the Chert slide and 2 of the Bauxite one, in one folder."""
    folder = tmp_path / 'tiles'
    folder.mkdir()
    for name in ('Chert/Chert23_11.jpg', 'Chert/Chert23_12.jpg',
                 'Chert/Chert23_13.jpg', 'Bauxite/Bauxite27_11.jpg',
                 'Bauxite/Bauxite27_12.jpg'):
        shutil.copy(osp.join(DEMO_DATA, name), folder)
    return folder


def test_predict_per_slide_table_and_csv(quickstart_model, tiles, tmp_path):
    out = tmp_path / 'out' / 'preds.json'
    proc = run_tool('tools/predict.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], str(tiles),
                    '--group-by', '--out', str(out), env=ENV)
    doc = read_json(out)
    classes = doc['classes']
    scores = defaultdict(list)
    for p in doc['predictions']:
        scores[_slide(p['file'])].append([p['scores'][c] for c in classes])
    slides = read_csv_dicts(tmp_path / 'out' / 'preds_per_slide.csv')
    assert [(s['slide'], s['tiles']) for s in slides] == [
        ('Bauxite27', '2'), ('Chert23', '3')]
    assert list(slides[0])[:4] == ['slide', 'tiles', 'pred_class',
                                   'pred_score']
    for s in slides:
        # logmean (the default): the normalised geometric mean
        geo = np.exp(np.log(np.clip(scores[s['slide']], 1e-12, 1)).mean(0))
        geo /= geo.sum()
        np.testing.assert_allclose(
            [float(s[f'score/{c}']) for c in classes], geo, atol=1e-6)
        assert s['pred_class'] == classes[geo.argmax()]
        assert float(s['pred_score']) == pytest.approx(geo.max(), abs=1e-6)
        row = re.search(rf'^{s["slide"]} +{s["tiles"]} +(\S+) +([\d.]+)$',
                        proc.stdout, re.M)
        assert row and row.group(1) == s['pred_class']
    assert '2 slides (logmean of the scores of 5 images)' in proc.stdout


def test_predict_stops_before_predicting_on_a_missed_name(
        quickstart_model, tiles, tmp_path):
    shutil.copy(tiles / 'Chert23_11.jpg', tiles / 'overview.jpg')
    proc = run_tool('tools/predict.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], str(tiles),
                    '--group-by', '--out', str(tmp_path / 'p.csv'), env=ENV,
                    check=False)
    assert proc.returncode == 2
    error = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert len(error) == 1 and error[0].startswith('error: --group-by ')
    assert 'does not match 1 of the 6 file names (e.g. overview.jpg)' \
        in error[0]
    assert 'predicting' not in proc.stdout
    assert not (tmp_path / 'p.csv').exists()


@pytest.mark.parametrize('tool', ['test', 'predict'])
def test_pool_needs_group_by(tool, tmp_path):
    checkpoint = tmp_path / 'x.pth'
    checkpoint.write_bytes(b'')
    argv = [QUICKSTART, str(checkpoint)]
    argv += [DEMO_DATA] if tool == 'predict' else []
    module = load_tool(tool)
    with pytest.raises(ValueError, match='--pool .* --group-by'):
        module.parse_args(argv + ['--pool', 'mean'])
    args = module.parse_args(argv + ['--group-by'])
    assert args.group_by == '' and args.pool is None  # the defaults
    args = module.parse_args(argv + ['--group-by', 'folder', '--pool',
                                     'mean'])
    assert (args.group_by, args.pool) == ('folder', 'mean')
