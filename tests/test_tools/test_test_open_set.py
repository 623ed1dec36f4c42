"""tools/test.py's calibration report, --unknown DIR and --embedding, run as
a user would on the shared quick-start model (open-set head, bundled
data)."""
import os.path as osp
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from conftest import (file_magic, load_tool, make_image, read_csv_dicts,
                      read_json, run_tool)

PNG = b'\x89PNG\r\n\x1a\n'
OPEN_SET_KEYS = {'known', 'unknown', 'threshold', 'known_flagged',
                 'unknown_flagged', 'auroc', 'threshold_source',
                 'temperature', 'known_accuracy', 'unknown_dir'}


@pytest.fixture(scope='module')
def unknown_dir(tmp_path_factory):
    """Images of no rock: noise and flat colours, in nested folders, beside
    a file that is no image."""
    from PIL import Image
    root = tmp_path_factory.mktemp('not_rocks')
    files = [make_image(str(root / f'noise_{i}.png'), seed=i, size=(160, 128))
             for i in range(4)]
    for i, rgb in enumerate([(255, 0, 0), (0, 160, 0), (20, 20, 220),
                             (250, 250, 250), (0, 0, 0), (120, 120, 0)]):
        path = root / 'flat' / ('deeper' if i % 2 else '') / f'flat_{i}.jpg'
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (160, 128), rgb).save(path)
        files.append(str(path))
    (root / 'flat' / 'README.txt').write_text('not an image')
    return str(root), sorted(files)


@pytest.fixture(scope='module')
def open_set_run(quickstart_model, unknown_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('open_set')
    res, dump = str(out / 'results'), str(out / 'preds.json')
    proc = run_tool('tools/test.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], '--device', 'cpu',
                    '--work-dir', str(out / 'work'), '--results-dir', res,
                    '--mistakes', '0', '--out', dump,
                    '--unknown', unknown_dir[0], '--embedding')
    return dict(res=res, dump=dump, log=proc.stdout + proc.stderr,
                state=torch.load(quickstart_model['checkpoint'],
                                 weights_only=True)['state_dict'])


def _ece(scores, labels, n_bins=15):
    conf, pred = scores.max(axis=1), scores.argmax(axis=1)
    which = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    return sum(abs(conf[which == b].mean() -
                   (pred == labels)[which == b].mean()) * (which == b).sum()
               for b in range(n_bins) if (which == b).any()) / len(conf)


def test_prints_ece_before_and_after_the_temperature(open_set_run):
    found = re.search(r'expected calibration error \(15 bins\): ([\d.]+) % '
                      r'before, ([\d.]+) % after the temperature T = '
                      r'([\d.]+)', open_set_run['log'])
    assert found, open_set_run['log'][-3000:]
    before, after, t = map(float, found.groups())
    assert t == pytest.approx(float(open_set_run['state']['head.temperature']),
                              abs=1e-3)
    preds = read_json(open_set_run['dump'])
    labels = np.array([p['gt_label'] for p in preds])
    raw = np.array([p['raw_score'] for p in preds])
    calibrated = np.array([p['pred_score'] for p in preds])
    # the calibrated scores are the raw ones at temperature T
    np.testing.assert_allclose(
        calibrated, torch.softmax(torch.log(torch.tensor(raw)) / t,
                                  1).numpy(), atol=1e-3)
    assert before == pytest.approx(_ece(raw, labels) * 100, abs=0.006)
    assert after == pytest.approx(_ece(calibrated, labels) * 100, abs=0.006)
    summary = read_json(osp.join(open_set_run['res'], 'summary.json'))
    assert summary['calibration']['ece'] == pytest.approx(after, abs=0.006)
    assert summary['metrics']['ece'] == pytest.approx(after, abs=0.006)
    assert file_magic(osp.join(open_set_run['res'], 'reliability.png'),
                      8) == PNG


def test_unknown_images_are_told_from_the_test_images(open_set_run,
                                                      unknown_dir):
    report = read_json(osp.join(open_set_run['res'], 'open_set.json'))
    assert set(report) == OPEN_SET_KEYS
    assert report['unknown'] == len(unknown_dir[1]) == 10
    assert report['threshold_source'] == 'fitted'
    assert report['threshold'] == pytest.approx(
        float(open_set_run['state']['head.fitted_threshold']))
    assert report['auroc'] > 0.9
    assert report['unknown_flagged'] >= 0.5 > report['known_flagged']
    rows = read_csv_dicts(osp.join(open_set_run['res'],
                                   'novelty_scores.csv'))
    assert list(rows[0]) == ['file', 'set', 'novelty', 'flagged',
                             'pred_class']
    unknown = [r for r in rows if r['set'] == 'unknown']
    known = [r for r in rows if r['set'] == 'known']
    assert sorted(r['file'] for r in unknown) == unknown_dir[1]
    assert len(known) == report['known']
    novelty = np.array([float(r['novelty']) for r in rows])
    flagged = np.array([r['flagged'] == 'True' for r in rows])
    np.testing.assert_array_equal(flagged, novelty > report['threshold'])
    assert report['auroc'] == pytest.approx(roc_auc_score(
        [r['set'] == 'unknown' for r in rows], novelty), abs=1e-6)
    assert report['unknown_flagged'] == pytest.approx(
        np.mean(flagged[[r['set'] == 'unknown' for r in rows]]))
    # the per-image predictions carry the same novelty and flag
    preds = read_csv_dicts(osp.join(open_set_run['res'],
                                    'prediction_results.csv'))
    assert [p['File'] for p in preds] == [r['file'] for r in known]
    np.testing.assert_allclose([float(p['novelty']) for p in preds],
                               [float(r['novelty']) for r in known])
    assert [p['unknown'] for p in preds] == [r['flagged'] for r in known]
    accuracy = np.mean([p['Success'] == 'True' for p in preds]) * 100
    assert report['known_accuracy'] == pytest.approx(accuracy)
    log = open_set_run['log']
    assert (f'open set: 10 images of {unknown_dir[0]} against the '
            f'{len(known)} test images: novelty AUROC '
            f'{report["auroc"]:.3f}') in log
    assert f'{report["unknown_flagged"] * 100:.1f} % of the unknown' in log
    assert 'open_set.json, novelty_scores.csv' in log


def test_embedding_png(open_set_run):
    assert file_magic(osp.join(open_set_run['res'], 'embedding.png'),
                      8) == PNG
    # 44 test + 10 unknown points: perplexity (54 - 1) / 3
    assert 'embedding (t-SNE, perplexity 17.7): embedding.png' in \
        open_set_run['log']


def test_a_plain_head_checkpoint_is_one_error(quickstart_model, unknown_dir,
                                              tmp_path):
    """A model from before the open-set head: its config names mmpretrain's
    LinearClsHead and its checkpoint has no bank."""
    ckpt = torch.load(quickstart_model['checkpoint'], weights_only=True)
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                          if not k.startswith('head.') or
                          k.startswith('head.fc.')}
    plain = str(tmp_path / 'plain.pth')
    torch.save(ckpt, plain)
    config = tmp_path / 'plain_head.py'
    config.write_text(f'_base_ = [{quickstart_model["config"]!r}]\n'
                      "model = dict(head=dict(type='LinearClsHead'))\n")
    proc = run_tool('tools/test.py', str(config), plain, '--device', 'cpu',
                    '--work-dir', str(tmp_path / 'work'),
                    '--unknown', unknown_dir[0], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert errors == [f'error: {plain}: the model has no feature bank for '
                      '--unknown: its head is LinearClsHead (trained before '
                      'open-set support); train again with the shipped '
                      'configs (OpenSetLinearClsHead)']
    assert 'Traceback' not in proc.stderr
    assert not osp.exists(tmp_path / 'work' / 'test_results')


def test_flags_set_the_head_and_refuse_tta(quickstart_model, unknown_dir):
    """--unknown-threshold and --embedding edit the head's config; TTA
    (merged scores: no novelty, no features) is refused."""
    from mmengine.config import Config
    tool = load_tool('test')
    base = [quickstart_model['config'], quickstart_model['checkpoint']]
    args = tool.parse_args(base + ['--unknown', unknown_dir[0],
                                   '--unknown-threshold', '4.5',
                                   '--embedding'])
    cfg = tool.merge_args(Config.fromfile(base[0]), args, {'seed': 0})
    assert cfg.model.head.unknown_threshold == 4.5
    assert cfg.model.head.keep_features is True
    hook = [h for h in cfg.custom_hooks if h['type'] == 'OpenSetTestHook']
    assert hook == [dict(type='OpenSetTestHook', unknown_dir=unknown_dir[0],
                         embedding='tsne', results_dir=osp.join(
                             cfg.work_dir, 'test_results'))]
    plain = tool.merge_args(Config.fromfile(base[0]),
                            tool.parse_args(base), {'seed': 0})
    assert 'keep_features' not in plain.model.head
    assert not [h for h in plain.custom_hooks
                if h['type'] == 'OpenSetTestHook']
    with pytest.raises(ValueError, match='leave out --tta'):
        tool.parse_args(base + ['--tta', '--embedding'])
