"""tools/test.py's ROC / precision-recall curves and mistakes sheet, and
--tta in tools/test.py and tools/predict.py, run as a user would on the
shared quick-start model (Lite2, bundled data)."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from conftest import (DEMO_DATA, QUICKSTART, file_magic, read_csv_dicts,
                      read_json, run_tool)

PNG = b'\x89PNG\r\n\x1a\n'
JPEG = b'\xff\xd8\xff'


@pytest.fixture(scope='module')
def tested(quickstart_model, tmp_path_factory):
    """tools/test.py on the quick-start model's validation images, without
    and with --tta: ``{'plain': dir, 'tta': dir, 'log_*': output}``."""
    out = tmp_path_factory.mktemp('curves')
    runs = {'json_plain': str(out / 'plain.json')}
    for variant, extra in (('plain', ('--mistakes', '6', '--out',
                                      runs['json_plain'])),
                           ('tta', ('--tta', '--mistakes', '0'))):
        proc = run_tool('tools/test.py', quickstart_model['config'],
                        quickstart_model['checkpoint'], '--device', 'cpu',
                        '--work-dir', str(out / 'work'), '--results-dir',
                        str(out / variant), *extra)
        runs[variant] = str(out / variant)
        runs[f'log_{variant}'] = proc.stdout + proc.stderr
    return runs


def _scores(results_dir):
    rows = read_csv_dicts(osp.join(results_dir, 'prediction_results.csv'))
    classes = [c for c in list(rows[0])[4:] if c not in ('novelty',
                                                         'unknown')]
    scores = np.array([[float(r[c]) for c in classes] for r in rows])
    labels = np.array([classes.index(r['True_label']) for r in rows])
    return rows, classes, scores, labels


def test_roc_and_pr_areas_equal_sklearn_on_the_predictions(tested):
    rows, classes, scores, labels = _scores(tested['plain'])
    # the reference needs the unrounded scores: the CSV's 6 decimals make
    # ties of a confident model's 1.000000 and 0.000000
    preds = read_json(tested['json_plain'])
    assert [p['gt_label'] for p in preds] == labels.tolist()
    np.testing.assert_allclose([p['pred_score'] for p in preds], scores,
                               atol=5e-7)
    scores = np.array([p['pred_score'] for p in preds], np.float64)
    onehot = labels[:, None] == np.arange(len(classes))[None, :]
    table = {r['curve']: r for r in
             read_csv_dicts(osp.join(tested['plain'], 'roc_pr_summary.csv'))}
    assert list(table) == [*classes, 'macro', 'micro']
    for c, name in enumerate(classes):
        assert float(table[name]['auc']) == pytest.approx(
            roc_auc_score(onehot[:, c], scores[:, c]), abs=1e-4)
        assert float(table[name]['ap']) == pytest.approx(
            average_precision_score(onehot[:, c], scores[:, c]), abs=1e-4)
        assert int(table[name]['positives']) == onehot[:, c].sum()
    assert float(table['macro']['auc']) == pytest.approx(
        roc_auc_score(labels, scores, multi_class='ovr', average='macro'),
        abs=1e-4)
    assert float(table['micro']['auc']) == pytest.approx(
        roc_auc_score(onehot.ravel(), scores.ravel()), abs=1e-4)
    assert float(table['micro']['ap']) == pytest.approx(
        average_precision_score(onehot, scores, average='micro'), abs=1e-4)
    summary = read_json(osp.join(tested['plain'], 'summary.json'))
    assert summary['roc_auc']['macro'] == pytest.approx(
        float(table['macro']['auc']), abs=1e-6)
    assert summary['tta'] is False
    # the curves: one ROC per class and the averages, from (0,0) to (1,1)
    roc = read_csv_dicts(osp.join(tested['plain'], 'roc_curves.csv'))
    assert {r['curve'] for r in roc} == set(table)
    first = [r for r in roc if r['curve'] == classes[0]]
    assert (float(first[0]['fpr']), float(first[-1]['tpr'])) == (0.0, 1.0)
    pr = read_csv_dicts(osp.join(tested['plain'], 'pr_curves.csv'))
    assert {r['curve'] for r in pr} == set(table)
    for name in ('roc_curves.png', 'pr_curves.png'):
        assert file_magic(osp.join(tested['plain'], name), 8) == PNG
    assert 'one-vs-rest ROC AUC macro' in tested['log_plain']
    assert 'roc_curves.png' in tested['log_plain']


def test_mistakes_sheet_shows_the_most_confident_mistakes(tested):
    from PIL import Image
    rows, classes, scores, labels = _scores(tested['plain'])
    wrong = scores.argmax(1) != labels
    sheet = osp.join(tested['plain'], 'mistakes.jpg')
    if not wrong.any():
        assert not osp.exists(sheet)
        return
    assert file_magic(sheet, 3) == JPEG
    shown = min(6, int(wrong.sum()))  # --mistakes 6, 4 a row
    with Image.open(sheet) as img:
        assert img.width > 4 * 200 if shown >= 4 else img.width > 200
        assert img.height > (200 if shown <= 4 else 400)
    assert not osp.exists(osp.join(tested['tta'], 'mistakes.jpg'))  # 0


def test_tta_changes_the_scores_and_says_so(tested):
    _, _, plain, labels = _scores(tested['plain'])
    _, _, tta, tta_labels = _scores(tested['tta'])
    assert np.array_equal(labels, tta_labels)
    assert np.abs(plain - tta).max() > 1e-3  # 8 views averaged, not 1
    np.testing.assert_allclose(tta.sum(1), 1, atol=1e-4)
    summary = read_json(osp.join(tested['tta'], 'summary.json'))
    assert summary['tta'] is True and summary['num_images'] == len(labels)
    assert 'accuracy/top1' in summary['metrics']


def test_predict_tta_gives_the_test_tools_tta_scores(quickstart_model,
                                                     tested, tmp_path):
    rows, classes, tta, _ = _scores(tested['tta'])
    image = rows[0]['File']
    out = str(tmp_path / 'pred.json')
    proc = run_tool('tools/predict.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], image, '--tta',
                    '--out', out)
    assert 'TTA' in proc.stdout
    got = read_json(out)['predictions'][0]['scores']
    np.testing.assert_allclose([got[c] for c in classes], tta[0], atol=1e-4)
    bad = run_tool('tools/predict.py', quickstart_model['config'],
                   quickstart_model['checkpoint'], image, '--tta',
                   '--backend', 'onnxruntime', '--onnx',
                   quickstart_model['checkpoint'], check=False)
    assert bad.returncode == 2 and '--tta runs the PyTorch model' in \
        bad.stderr


def test_readme_tiles_command_shrinks_full_size_images(quickstart_model,
                                                      tmp_path):
    """README: `tools/test.py ... --data-root <tiles> --cfg-options
    test_dataloader.dataset.split=None` scores every image of a folder, and
    the quick start's test pipeline shrinks 1280x1024 tiles to the bundled
    256 px short side: each bundled image blown up 4x (4x4 copies of each
    pixel) gives, by area, its own pixels back, hence the same model input
    (the trained model's scores saturate, so they would not tell)."""
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from PIL import Image

    root = tmp_path / 'full_size'
    pairs = []
    for name in sorted(os.listdir(DEMO_DATA)):
        src = osp.join(DEMO_DATA, name,
                       sorted(os.listdir(osp.join(DEMO_DATA, name)))[0])
        (root / name).mkdir(parents=True)
        big = str(root / name / 'tile.png')  # lossless: exact pixels
        with Image.open(src) as img:
            assert img.size == (320, 256)
            img.resize((1280, 1024), Image.NEAREST).save(big)
        pairs.append((src, big))

    init_default_scope('mmpretrain')
    steps = Config.fromfile(QUICKSTART).test_dataloader.dataset.pipeline
    shipped = Compose(steps)
    no_shrink = Compose([dict(steps[0], pre_resize=None), *steps[1:]])
    for src, big in pairs[:3]:
        same = [shipped(dict(img_path=p))['inputs'] for p in (src, big)]
        assert same[0].shape[-2:] == (260, 260)
        assert torch.equal(*same)
        differ = [no_shrink(dict(img_path=p))['inputs'] for p in (src, big)]
        assert not torch.equal(*differ)

    results = str(tmp_path / 'results')
    run_tool('tools/test.py', quickstart_model['config'],
             quickstart_model['checkpoint'], '--data-root', str(root),
             '--work-dir', str(tmp_path / 'work'), '--results-dir', results,
             '--cfg-options', 'test_dataloader.dataset.split=None')
    summary = read_json(osp.join(results, 'summary.json'))
    assert summary['num_images'] == 11 and summary['split'] is None
    assert 'accuracy/top1' in summary['metrics']
