"""tools/predict.py and the open-set head (issue 22): the answer and the
novelty in the table, --out CSV/JSON columns, --unknown-threshold (PyTorch
and --onnx alone), --show-dir with the most similar training images, and
a model without a feature bank. Run as a user would, on the quick start."""
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from conftest import DEMO_DATA, REPO, read_csv_dicts, read_json, run_tool

QUICKSTART = osp.join(REPO, 'configs', 'rock_quickstart.py')

UNKNOWN = 'unknown (unlike every trained class)'
OPEN_SET_COLUMNS = ['answer', 'novelty', 'unknown', 'neighbor1',
                    'neighbor2', 'neighbor3']


@pytest.fixture(scope='module')
def two_images(tmp_path_factory):
    from rock_plugin.apis.inferencer import list_images
    folder = tmp_path_factory.mktemp('open_set_images')
    for cls in ('Chert', 'Bauxite'):
        shutil.copy(list_images(osp.join(DEMO_DATA, cls))[0], folder)
    return folder


def _table(stdout):
    """The printed table's rows as ``{file: line}``."""
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith('file '))
    assert 'novelty' in lines[start] and 'answer' in lines[start]
    rows = {}
    for line in lines[start + 1:]:
        if ' predicted, ' in line:
            break
        rows[line.split()[0]] = line
    return rows


def test_pytorch_csv_table_and_evidence_images(quickstart_model,
                                               two_images, tmp_path):
    out, shown = tmp_path / 'preds.csv', tmp_path / 'shown'
    proc = run_tool('tools/predict.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], str(two_images),
                    '--out', str(out), '--show-dir', str(shown),
                    '--topk', '3', '--unknown-threshold', '1e9')
    assert 'novelty above 1e+09 (--unknown-threshold)' in proc.stdout
    assert '0 of 2 unknown' in proc.stdout
    rows = read_csv_dicts(out)
    header = list(rows[0])
    assert header[5:11] == OPEN_SET_COLUMNS
    table = _table(proc.stdout)
    for row in rows:
        novelty = float(row['novelty'])
        assert row['unknown'] == 'False'
        assert row['answer'] == row['pred_class']
        line = table[osp.basename(row['file'])]
        assert f'{novelty:.2f}' in line.split()  # the novelty column
        assert line.split()[1] == line.split()[4] == row['pred_class']
        sims = []
        for cell in (row[f'neighbor{i}'] for i in (1, 2, 3)):
            cls, sim, path = cell.split(':', 2)
            assert f'score/{cls}' in header
            assert osp.isfile(osp.join(REPO, path))  # bundled training data
            sims.append(float(sim))
        assert sims == sorted(sims, reverse=True) and -1 <= sims[-1] <= 1
        # the image, then the evidence column: 160 px wide, not blank
        img = cv2.imread(str(shown / (osp.basename(row['file']) + '.jpg')))
        assert img.shape[1] == 448 + 160 + 3 * 4
        thumbs = img[60:400, 448 + 8:-4].reshape(-1, 3).astype(int)
        assert thumbs.std(0).max() > 20


def test_tta_reports_merged_scores_and_no_single_view_novelty(
        quickstart_model, two_images, tmp_path):
    """--tta on the shipped quick start: the answer is the merged scores'
    class, and the novelty, "unknown" and neighbour columns stay empty (no
    view's values pass as the merged image's: issue 23)."""
    out = tmp_path / 'tta.csv'
    run_tool('tools/predict.py', QUICKSTART, quickstart_model['checkpoint'],
             str(two_images), '--tta', '--out', str(out))
    rows = read_csv_dicts(out)
    assert len(rows) == 2
    for row in rows:
        scores = {k[len('score/'):]: float(v) for k, v in row.items()
                  if k.startswith('score/')}
        assert row['pred_class'] == max(scores, key=scores.get)
        assert row['answer'] == row['pred_class']
        assert sum(scores.values()) == pytest.approx(1, abs=1e-4)
        for column in OPEN_SET_COLUMNS[1:]:
            assert row[column] == '', (column, row[column])


def test_onnx_alone_json_everything_unknown(quickstart_model,
                                            quickstart_onnx, two_images,
                                            tmp_path):
    from rock_plugin.apis.inferencer import RockInferencer, list_images
    out = tmp_path / 'preds.json'
    proc = run_tool('tools/predict.py', '--onnx', quickstart_onnx,
                    str(two_images), '--out', str(out),
                    '--unknown-threshold', '-1000')
    assert '2 of 2 unknown' in proc.stdout
    assert sum(UNKNOWN in line for line in
               _table(proc.stdout).values()) == 2
    doc = read_json(out)
    assert doc['unknown_threshold'] == -1000
    torch_model = RockInferencer(quickstart_model['config'],
                                 quickstart_model['checkpoint'])
    reference = {osp.basename(r['file']): r
                 for r in torch_model(list_images(str(two_images)))}
    for pred in doc['predictions']:
        ref = reference[osp.basename(pred['file'])]
        assert pred['unknown'] is True and pred['answer'] == UNKNOWN
        # the exported model gives the same novelty and neighbours
        assert pred['novelty'] == pytest.approx(ref['novelty'], abs=1e-2)
        assert [n['file'] for n in pred['neighbors']] == \
            [n['file'] for n in ref['neighbors']]
        assert {'file', 'class', 'label', 'similarity'} == \
            set(pred['neighbors'][0])


def test_a_model_without_a_feature_bank(quickstart_model, two_images,
                                        tmp_path):
    import torch

    from rock_plugin.apis.inferencer import write_predictions
    from rock_plugin.utils.checkpoint_io import load_checkpoint_file
    ckpt = load_checkpoint_file(quickstart_model['checkpoint'],
                                map_location='cpu')
    state = ckpt['state_dict']
    state['head.bank'] = state['head.bank'][:0]
    state['head.bank_labels'] = state['head.bank_labels'][:0]
    old = tmp_path / 'old.pth'
    torch.save(ckpt, old)
    proc = run_tool('tools/predict.py', quickstart_model['config'], str(old),
                    str(two_images), '--unknown-threshold', '2',
                    check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    [line] = [ln for ln in proc.stderr.splitlines() if 'error' in ln]
    assert line.startswith(f'error: {old}: --unknown-threshold needs a '
                           'model with a feature bank')
    # its CSV keeps the columns, empty
    result = dict(file='a.jpg', pred_label=0, pred_class='Chert',
                  pred_score=0.9, topk=[('Chert', 0.9)],
                  scores={'Chert': 0.9}, answer='Chert')
    write_predictions(str(tmp_path / 'old.csv'), [result], ['Chert'])
    [row] = read_csv_dicts(tmp_path / 'old.csv')
    assert list(row)[5:11] == OPEN_SET_COLUMNS
    assert [row[c] for c in OPEN_SET_COLUMNS] == ['Chert'] + [''] * 5


def test_evidence_drawing_reads_what_exists(tmp_path):
    from rock_plugin.visualization.annotate import (GREY, annotate_result,
                                                    thumbnail)
    image = np.full((90, 120, 3), (20, 120, 220), np.uint8)
    cv2.imwrite(str(tmp_path / 'train.png'), image[..., ::-1])
    result = dict(pred_class='Chert', topk=[('Chert', 0.4)], novelty=3.0,
                  unknown=True, answer=UNKNOWN, neighbors=[
                      {'file': str(tmp_path / 'train.png'),
                       'class': 'Chert', 'similarity': 0.5},
                      {'file': str(tmp_path / 'gone.jpg'),
                       'class': 'Evil\x1b]0;x\x07', 'similarity': 0.4},
                      {'file': '/dev/zero', 'class': None,
                       'similarity': 0.3}])
    drawn = annotate_result(np.zeros((224, 224, 3), np.uint8), result, 2.0)
    assert drawn.shape[1] == 448 + 160 + 3 * 4
    column = drawn[:, 448 + 8:448 + 8 + 160].reshape(-1, 3)
    # the training image, scaled, and two grey placeholders
    assert (np.abs(column.astype(int) - (20, 120, 220)).sum(1) < 6).sum() \
        > 150 * 100
    assert (column == GREY).all(1).sum() > 2 * 100 * 160
    assert thumbnail('/dev/zero') is None
    assert thumbnail(str(tmp_path / 'gone.jpg')) is None
    # without a bank: the old picture, the top-k under the image only
    plain = annotate_result(np.zeros((224, 224, 3), np.uint8),
                            dict(result, novelty=None, neighbors=None))
    assert plain.shape[1] == 448 and plain.shape[0] < drawn.shape[0]
