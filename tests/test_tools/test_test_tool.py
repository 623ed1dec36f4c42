"""tools/test.py and tools/dist_test.sh run as a user would (subprocess)."""
import math
import os
import os.path as osp

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from conftest import (TINY_CLASSES, TINY_CONFIG, file_magic,
                      launcher_failure, load_tool, make_class_folders,
                      read_csv_dicts, read_csv_rows, read_json, run_launcher,
                      run_tool)

# One thread per process: the CPUs are shared, and OpenMP threads spinning
# on busy cores make a 6-image test take seconds instead of milliseconds.
ENV = dict(OMP_NUM_THREADS='1')
PNG = b'\x89PNG\r\n\x1a\n'
JPEG = b'\xff\xd8\xff'
RESULT_FILES = ('per_class.csv', 'confusion_matrix.csv',
                'confusion_matrix.png', 'prediction_results.csv',
                'summary.json')


def _val_files(data_root, ratio, fold, seed, split='val'):
    """The images of a fold, as the dataset computes them."""
    import rock_plugin  # noqa: F401
    from rock_plugin.datasets import RockDataset
    ds = RockDataset(data_root=data_root, split=split, val_ratio=ratio,
                     fold=fold, split_seed=seed, lazy_init=False)
    return sorted(ds.get_data_info(i)['img_path'] for i in range(len(ds)))


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    """One epoch of the tiny config (seed 1): (work dir, checkpoint)."""
    work = str(tmp_path_factory.mktemp('test_tool') / 'run')
    run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '1',
             '--data-root', tiny_data, '--work-dir', work, '--cfg-options',
             'train_cfg.max_epochs=1', env=ENV)
    return work, osp.join(work, 'epoch_1.pth')


@pytest.fixture(scope='module')
def tested(trained, tiny_data, tmp_path_factory):
    """tools/test.py with the default results dir, --out and --show-dir."""
    work, ckpt = trained
    extra = tmp_path_factory.mktemp('test_out')
    out, show = str(extra / 'preds.json'), str(extra / 'show')
    proc = run_tool('tools/test.py', TINY_CONFIG, ckpt, '--device', 'cpu',
                    '--data-root', tiny_data, '--work-dir', work, '--out', out,
                    '--show-dir', show, env=ENV)
    return osp.join(work, 'test_results'), out, show, proc


def test_keeps_the_training_runs_saved_config(trained, tested):
    """tools/test.py into the training work dir (the default) leaves the
    config the training run saved there alone; it saves its own beside it."""
    work, _ = trained
    with open(osp.join(work, 'tiny_config.py'), encoding='utf-8') as f:
        saved = f.read()
    assert 'PredictionCollector' not in saved and 'max_epochs=1' in saved
    with open(osp.join(work, 'tiny_config_test.py'), encoding='utf-8') as f:
        assert 'PredictionCollector' in f.read()


def test_writes_every_result_file_and_prints_the_table(tested):
    results, _, _, proc = tested
    for name in RESULT_FILES:
        assert osp.isfile(osp.join(results, name)), name
    assert not [f for f in os.listdir(results) if f.endswith('.tmp')]
    assert file_magic(osp.join(results, 'confusion_matrix.png'), 8) == PNG
    log = proc.stdout + proc.stderr
    assert 'Per-class results' in log and 'macro avg' in log
    assert all(name in log for name in TINY_CLASSES)
    assert results in log and 'prediction_results.csv' in log
    # printed once, by the tool, not also by RockMetric during the test
    assert log.count('Per-class results') == 1


def test_evaluates_the_training_runs_validation_fold(tested, tiny_data):
    results, _, _, _ = tested
    summary = read_json(osp.join(results, 'summary.json'))
    # 3 classes x 8 images, ratio 0.25: 2 per class; the split seed is the
    # training seed read from the checkpoint, so no training image leaks in
    assert summary['num_images'] == 6
    assert summary['split']['seed'] == 1
    files = sorted(r['File'] for r in
                   read_csv_dicts(osp.join(results, 'prediction_results.csv')))
    assert files == _val_files(tiny_data, 0.25, None, 1)
    assert not set(files) & set(_val_files(tiny_data, 0.25, None, 1,
                                           split='train'))


def test_prediction_results_csv(tested):
    results, _, _, _ = tested
    rows = read_csv_rows(osp.join(results, 'prediction_results.csv'))
    # the open-set head's novelty and flag after the original's columns
    assert rows[0] == ['File', 'Pre_label', 'True_label', 'Success',
                       *TINY_CLASSES, 'novelty', 'unknown']
    assert len(rows) - 1 == 6
    for row in rows[1:]:
        assert math.isfinite(float(row[-2])) and row[-1] in ('True', 'False')
        row = row[:-2]
        assert osp.isfile(row[0])
        assert row[1] in TINY_CLASSES and row[2] in TINY_CLASSES
        assert row[3] == str(row[1] == row[2])
        assert row[2] == osp.basename(osp.dirname(row[0]))  # folder = class
        scores = [float(s) for s in row[4:]]
        assert sum(scores) == pytest.approx(1, abs=1e-4)
        assert TINY_CLASSES[int(np.argmax(scores))] == row[1]


def test_per_class_and_confusion_equal_sklearn_on_the_predictions(tested):
    results, _, _, _ = tested
    preds = read_csv_dicts(osp.join(results, 'prediction_results.csv'))
    y_true = [r['True_label'] for r in preds]
    y_pred = [r['Pre_label'] for r in preds]
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=list(TINY_CLASSES), zero_division=0)
    table = read_csv_dicts(osp.join(results, 'per_class.csv'))
    assert list(table[0]) == ['class', 'precision', 'recall', 'f1-score',
                              'support']
    by_class = {row['class']: row for row in table}
    for i, name in enumerate(TINY_CLASSES):
        row = by_class[name]
        assert float(row['precision']) == pytest.approx(p[i] * 100, abs=1e-3)
        assert float(row['recall']) == pytest.approx(r[i] * 100, abs=1e-3)
        assert float(row['f1-score']) == pytest.approx(f[i] * 100, abs=1e-3)
        assert int(row['support']) == s[i]
    macro = by_class['macro avg']
    assert float(macro['f1-score']) == pytest.approx(f.mean() * 100, abs=1e-3)
    assert int(macro['support']) == len(preds)
    acc = 100 * np.mean([a == b for a, b in zip(y_true, y_pred)])
    assert float(by_class['accuracy/top1']['f1-score']) == pytest.approx(
        acc, abs=1e-3)
    # top-5 is capped to the 3 classes: always 100
    assert float(by_class['accuracy/top3']['f1-score']) == 100

    matrix = read_csv_rows(osp.join(results, 'confusion_matrix.csv'))
    assert matrix[0] == ['true \\ predicted', *TINY_CLASSES]
    assert [row[0] for row in matrix[1:]] == list(TINY_CLASSES)
    counts = np.array([[int(v) for v in row[1:]] for row in matrix[1:]])
    assert counts.sum() == len(preds)
    np.testing.assert_array_equal(
        counts, confusion_matrix(y_true, y_pred, labels=list(TINY_CLASSES)))

    summary = read_json(osp.join(results, 'summary.json'))
    assert summary['metrics']['accuracy/top1'] == pytest.approx(acc)
    assert summary['metrics']['f1-score'] == pytest.approx(f.mean() * 100)
    assert summary['classes'] == list(TINY_CLASSES)
    assert summary['checkpoint'].endswith('epoch_1.pth')
    assert summary['config'] == TINY_CONFIG


def test_out_json_and_show_dir(tested):
    results, out, show, _ = tested
    dump = read_json(out)
    rows = read_csv_dicts(osp.join(results, 'prediction_results.csv'))
    assert len(dump) == len(rows) == 6
    for item, row in zip(dump, rows):
        assert item['img_path'] == row['File']
        assert item['pred_class'] == row['Pre_label']
        assert item['gt_class'] == row['True_label']
        assert len(item['pred_score']) == 3
    images = sorted(os.listdir(show))
    assert len(images) == 6
    assert images[0].startswith('00000_')
    for name in images:
        assert file_magic(osp.join(show, name), 3) == JPEG


def test_split_validation_metrics_out_and_wrong_only(trained, tiny_data,
                                                     tmp_path):
    work, ckpt = trained
    res, show = str(tmp_path / 'res'), str(tmp_path / 'show')
    out = str(tmp_path / 'metrics.json')
    run_tool('tools/test.py', TINY_CONFIG, ckpt, '--device', 'cpu',
             '--data-root', tiny_data, '--work-dir', work, '--results-dir',
             res, '--split-validation', '--ratio', '0.5', '--fold', '1',
             '--out', out, '--out-item', 'metrics', '--show-dir', show,
             '--show-wrong-only', '--interval', '2', env=ENV)
    rows = read_csv_dicts(osp.join(res, 'prediction_results.csv'))
    assert sorted(r['File'] for r in rows) == _val_files(tiny_data, 0.5, 1, 1)
    assert len(rows) == 12
    summary = read_json(osp.join(res, 'summary.json'))
    assert summary['num_images'] == 12
    assert summary['split'] == dict(split='val', ratio=0.5, fold=1, seed=1)
    assert read_json(out) == summary['metrics']
    wrong = sum(r['Success'] == 'False' for r in rows)
    assert len(os.listdir(show)) == math.ceil(wrong / 2)


def test_dist_test_two_cpu_processes_give_the_same_results(trained, tested,
                                                           tiny_data,
                                                           tmp_path):
    work, ckpt = trained
    single = tested[0]
    res = str(tmp_path / 'dist')
    proc, log = run_launcher(
        'dist_test.sh', TINY_CONFIG, ckpt, '2', '--device', 'cpu',
        '--data-root', tiny_data, '--work-dir', work, '--results-dir', res)
    assert proc.returncode == 0, launcher_failure(proc)
    a = read_json(osp.join(single, 'summary.json'))
    b = read_json(osp.join(res, 'summary.json'))
    assert b['world_size'] == 2 and a['world_size'] == 1
    # every image once (no sampler padding), in dataset order
    assert b['num_images'] == a['num_images'] == 6
    for key, value in a['metrics'].items():
        assert b['metrics'][key] == pytest.approx(value)
    for name in ('per_class.csv', 'confusion_matrix.csv'):
        assert read_csv_rows(osp.join(res, name)) == read_csv_rows(osp.join(single, name))
    pa = read_csv_rows(osp.join(single, 'prediction_results.csv'))
    pb = read_csv_rows(osp.join(res, 'prediction_results.csv'))
    assert [r[:4] for r in pb] == [r[:4] for r in pa]
    np.testing.assert_allclose(np.array([r[4:-1] for r in pb[1:]], float),
                               np.array([r[4:-1] for r in pa[1:]], float),
                               atol=1e-5)
    # the table is printed by rank 0 only
    assert log.count('Per-class results') == 1


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    proc = run_tool('tools/test.py', TINY_CONFIG, str(tmp_path / 'nope.pth'),
                    '--device', 'cpu', check=False, env=ENV)
    assert proc.returncode == 2
    assert 'nope.pth: checkpoint not found' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_other_classes_than_the_checkpoint_is_a_clear_error(trained,
                                                            tmp_path):
    _, ckpt = trained
    other = make_class_folders(str(tmp_path / 'other'),
                               classes=('alpha', 'beta', 'delta'),
                               per_class=4)
    proc = run_tool('tools/test.py', TINY_CONFIG, ckpt, '--device', 'cpu',
                    '--data-root', other, '--work-dir', str(tmp_path / 'w'),
                    check=False, env=ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "trained on ['alpha', 'beta', 'gamma']" in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_out_must_be_json(trained, tmp_path):
    run_cli = load_tool('_common').run_cli
    _, ckpt = trained
    code = run_cli(load_tool('test').main, [TINY_CONFIG, ckpt, '--out',
                              str(tmp_path / 'r.pkl')])
    assert code == 2


def test_save_prediction_images_selects_wrong_and_interval(tmp_path):
    from rock_plugin.apis.evaluate import save_prediction_images
    folder = make_class_folders(str(tmp_path / 'img'), classes=('a', 'b'),
                                per_class=3, size=(20, 30))
    preds = []
    for i, name in enumerate(sorted(os.listdir(osp.join(folder, 'a')))):
        preds.append(dict(img_path=osp.join(folder, 'a', name), gt_label=0,
                          pred_label=i % 2, pred_score=[0.4, 0.6]
                          if i % 2 else [0.7, 0.3]))
    every = save_prediction_images(preds, ['a', 'b'], str(tmp_path / 's1'))
    assert len(every) == 3
    wrong = save_prediction_images(preds, ['a', 'b'], str(tmp_path / 's2'),
                                   wrong_only=True)
    assert [osp.basename(p)[:5] for p in wrong] == ['00001']
    assert len(save_prediction_images(preds, ['a', 'b'], str(tmp_path / 's3'),
                                      interval=2)) == 2


def test_real_rocks_train_then_test(shared_data, tmp_path):
    """The 11 real classes, with names as long as ResidualCalcareniticDolomite,
    through train and test (tiny model, one epoch)."""
    classes = sorted(os.listdir(shared_data))
    n = str(len(classes))
    opts = ('--cfg-options', f'model.head.num_classes={n}',
            f'data_preprocessor.num_classes={n}')
    work = str(tmp_path / 'real')
    run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '3',
             '--no-validate', '--data-root', shared_data, '--work-dir', work,
             *opts,
             'train_cfg.max_epochs=1', env=ENV)
    proc = run_tool('tools/test.py', TINY_CONFIG, osp.join(work,
                                                           'epoch_1.pth'),
                    '--device', 'cpu', '--data-root', shared_data,
                    '--work-dir', work, *opts, env=ENV)
    results = osp.join(work, 'test_results')
    summary = read_json(osp.join(results, 'summary.json'))
    assert summary['classes'] == classes
    assert summary['num_images'] == len(_val_files(shared_data, 0.25, None, 3))
    rows = read_csv_rows(osp.join(results, 'prediction_results.csv'))
    assert [c for c in rows[0][4:] if c not in ('novelty', 'unknown')] \
        == classes
    assert len(rows) - 1 == summary['num_images']
    counts = np.array([[int(v) for v in row[1:]] for row in
                       read_csv_rows(osp.join(results, 'confusion_matrix.csv'))[1:]])
    assert counts.shape == (11, 11) and counts.sum() == summary['num_images']
    assert 'ResidualCalcareniticDolomite' in proc.stdout
