"""The numbers behind tools/test.py's calibration and open-set outputs, on
generated scores: top-label ECE bins against a plain loop, the test run's
calibration summary, the novelty columns of the result tables, and the 2-D
feature map (t-SNE perplexity for small sets)."""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import file_magic, read_csv_rows

PNG = b'\x89PNG\r\n\x1a\n'


def _ece_loop(scores, labels, n_bins=15):
    """Top-label ECE written as the textbook loop: bins (lo, hi], the first
    one closed, each weighted by its share of the images."""
    conf, pred = scores.max(axis=1), scores.argmax(axis=1)
    total, counts, accuracy = 0.0, [], []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        mine = (conf <= hi) & ((conf > lo) if b else True)
        counts.append(int(mine.sum()))
        accuracy.append((pred[mine] == labels[mine]).mean() if mine.any()
                        else np.nan)
        if mine.any():
            total += mine.sum() * abs(conf[mine].mean() - accuracy[-1])
    return total / len(conf), counts, accuracy


def _generated(n=500, classes=6, sharp=3.0, seed=0):
    """Scores of an overconfident model: labels drawn from the softmax of
    logits, scores from the logits made ``sharp`` times sharper."""
    from rock_plugin.evaluation.functional.calibration import softmax
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, classes))
    labels = np.array([rng.choice(classes, p=p) for p in softmax(logits)])
    return logits * sharp, labels


def test_ece_bins_equal_the_loop_on_generated_scores():
    from rock_plugin.evaluation.functional.calibration import (
        calibration_bins, softmax)
    for seed, sharp in ((0, 3.0), (1, 1.0), (2, 0.5)):
        logits, labels = _generated(seed=seed, sharp=sharp)
        scores = softmax(logits)
        bins = calibration_bins(scores, labels)
        ece, counts, accuracy = _ece_loop(scores, labels)
        assert bins['ece'] == pytest.approx(ece, abs=1e-12)
        assert bins['count'].tolist() == counts
        np.testing.assert_allclose(bins['accuracy'], accuracy)
        assert len(bins['edges']) == 16


def _test_run(tmp_path, predictions, temperature):
    """TestResultsHook after a test epoch of ``predictions``, with a model
    whose head has ``temperature`` (None: no such head)."""
    import rock_plugin  # noqa: F401
    from mmengine.config import Config

    from rock_plugin.engine.hooks import TestResultsHook
    from rock_plugin.engine.hooks import test_results_hook
    from rock_plugin.evaluation import PredictionCollector
    collector = PredictionCollector()
    collector.dataset_meta = dict(classes=[f'c{i}' for i in range(6)])
    collector.predictions = predictions
    head = SimpleNamespace(temperature=torch.tensor(temperature)) \
        if temperature is not None else None
    runner = SimpleNamespace(
        cfg=Config(dict(load_from='x.pth', model=dict(type='M'),
                        test_dataloader=dict(dataset=dict(split=None)))),
        work_dir=str(tmp_path), model=SimpleNamespace(head=head),
        test_evaluator=SimpleNamespace(metrics=[collector]),
        test_dataloader=SimpleNamespace(dataset=None), hooks=[])
    hook = TestResultsHook(mistakes=0)
    logged = []
    original = test_results_hook.print_log
    test_results_hook.print_log = lambda msg, **kw: logged.append(msg)
    try:
        hook.after_test_epoch(runner, {})
        hook.after_test(runner)
    finally:
        test_results_hook.print_log = original
    return hook.results, logged[0]


def test_a_test_run_reports_ece_before_and_after_the_temperature(tmp_path):
    from rock_plugin.evaluation.functional.calibration import (
        fit_temperature, softmax)
    logits, labels = _generated(n=300)
    t = fit_temperature(logits, labels)
    predictions = [dict(img_path=f'{i}.jpg', gt_label=int(y),
                        pred_label=int(z.argmax()),
                        pred_score=softmax(z[None], t)[0].tolist(),
                        raw_score=softmax(z[None])[0].tolist())
                   for i, (z, y) in enumerate(zip(logits, labels))]
    results, report = _test_run(tmp_path, predictions, t)
    calibration = results['summary']['calibration']
    before = _ece_loop(softmax(logits), labels)[0] * 100
    after = _ece_loop(softmax(logits, t), labels)[0] * 100
    assert calibration['ece_raw'] == pytest.approx(before)
    assert calibration['ece'] == pytest.approx(after)
    assert after < before / 2 and calibration['bins'] == 15
    assert calibration['temperature'] == pytest.approx(t, rel=1e-6)
    assert (f'expected calibration error (15 bins): {before:.2f} % before, '
            f'{after:.2f} % after the temperature T = {t:.3f}') in report
    png = osp.join(results['results_dir'], 'reliability.png')
    assert results['files']['reliability'] == png
    assert file_magic(png, 8) == PNG
    assert '  reliability.png' in report.splitlines()


def test_scores_without_raw_scores_report_one_ece(tmp_path):
    """A plain head, or TTA's merged scores: no ``raw_score``."""
    from rock_plugin.evaluation.functional.calibration import softmax
    logits, labels = _generated(n=60)
    predictions = [dict(img_path=f'{i}.jpg', gt_label=int(y),
                        pred_label=int(z.argmax()),
                        pred_score=softmax(z[None])[0].tolist())
                   for i, (z, y) in enumerate(zip(logits, labels))]
    results, report = _test_run(tmp_path, predictions, None)
    ece = _ece_loop(softmax(logits), labels)[0] * 100
    assert results['summary']['calibration']['ece_raw'] is None
    assert f'expected calibration error (15 bins): {ece:.2f} %' in \
        report.splitlines()
    assert osp.isfile(osp.join(results['results_dir'], 'reliability.png'))


def test_prediction_csv_gets_novelty_columns_only_when_all_have_them(
        tmp_path):
    from rock_plugin.evaluation.result_tables import (write_novelty_csv,
                                                      write_prediction_csv)
    preds = [dict(img_path='a.jpg', gt_label=0, pred_label=0,
                  pred_score=[0.9, 0.1], novelty=-0.5, unknown=False),
             dict(img_path='b.jpg', gt_label=1, pred_label=0,
                  pred_score=[0.6, 0.4], novelty=3.25, unknown=True)]
    rows = read_csv_rows(write_prediction_csv(preds, ['x', 'y'],
                                              str(tmp_path / 'p.csv')))
    assert rows[0] == ['File', 'Pre_label', 'True_label', 'Success', 'x',
                       'y', 'novelty', 'unknown']
    assert rows[2][-2:] == ['3.250000', 'True']
    # a head without a bank (or OpenSetPredictionCollector's None)
    preds[1]['novelty'] = None
    rows = read_csv_rows(write_prediction_csv(preds, ['x', 'y'],
                                              str(tmp_path / 'q.csv')))
    assert rows[0][-1] == 'y' and len(rows[1]) == 6
    rows = read_csv_rows(write_novelty_csv(
        [('a.jpg', 'known', -0.5, False, 'x'),
         ('n.png', 'unknown', 7.0, True, 'y')], str(tmp_path / 'n.csv')))
    assert rows == [['file', 'set', 'novelty', 'flagged', 'pred_class'],
                    ['a.jpg', 'known', '-0.500000', 'False', 'x'],
                    ['n.png', 'unknown', '7.000000', 'True', 'y']]


def test_perplexity_adapts_to_small_sets():
    from rock_plugin.evaluation.functional.embedding import (
        adapted_perplexity, embed_2d)
    assert adapted_perplexity(1000) == 30 and adapted_perplexity(91) == 30
    assert adapted_perplexity(46) == 15 and adapted_perplexity(4) == 1
    assert adapted_perplexity(2) == 0.5
    # sklearn alone refuses a perplexity of N or more: 8 points run
    rng = np.random.default_rng(0)
    assert embed_2d(rng.random((8, 16))).shape == (8, 2)
    assert embed_2d(rng.random((1, 16))).tolist() == [[0.0, 0.0]]
    assert embed_2d(rng.random((2, 16))).shape == (2, 2)
    with pytest.raises(ValueError, match='tsne'):
        embed_2d(rng.random((5, 4)), method='pca')


def test_tsne_keeps_clusters_apart_and_is_seeded():
    from rock_plugin.evaluation.functional.embedding import embed_2d
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (3, 64)) * 10
    labels = np.repeat(np.arange(3), 12)
    feats = centres[labels] + rng.normal(0, 1, (36, 64))
    points = embed_2d(feats, seed=3)
    np.testing.assert_array_equal(points, embed_2d(feats, seed=3))
    dist = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    # every point's nearest neighbour on the map is of its own cluster
    assert (labels[dist.argmin(axis=1)] == labels).all()
