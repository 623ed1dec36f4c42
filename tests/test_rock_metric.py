"""RockMetric equals sklearn; top-k capped; per-class table with names; the
same macro values from confusion counts (the training columns)."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from sklearn.metrics import (confusion_matrix, f1_score, precision_score,
                             recall_score)

from rock_plugin.evaluation import RockMetric, compute_rock_metrics
from rock_plugin.evaluation.metrics.rock_metric import (format_per_class_table,
                                                macro_metrics_from_confusion)


def _random_predictions(n=200, c=11, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    scores = rng.random((n, c))
    scores[np.arange(n), labels] += rng.random(n) * 1.2  # mostly right
    return scores / scores.sum(1, keepdims=True), labels


def test_equals_sklearn():
    scores, labels = _random_predictions()
    m = compute_rock_metrics(scores, labels, 11, (1, 5))
    preds = scores.argmax(1)
    kw = dict(labels=range(11), average=None, zero_division=0)
    np.testing.assert_allclose(m['precision_per_class'],
                               precision_score(labels, preds, **kw) * 100)
    np.testing.assert_allclose(m['recall_per_class'],
                               recall_score(labels, preds, **kw) * 100)
    np.testing.assert_allclose(m['f1-score_per_class'],
                               f1_score(labels, preds, **kw) * 100)
    kw['average'] = 'macro'
    assert m['precision'] == pytest.approx(
        precision_score(labels, preds, **kw) * 100)
    assert m['f1-score'] == pytest.approx(f1_score(labels, preds, **kw) * 100)
    assert m['accuracy/top1'] == pytest.approx((preds == labels).mean() * 100)
    top5 = np.argsort(-scores, 1)[:, :5]
    assert m['accuracy/top5'] == pytest.approx(
        np.mean([l in t for l, t in zip(labels, top5)]) * 100)
    assert m['confusion'] == confusion_matrix(labels, preds).tolist()


def test_topk_capped_at_class_count():
    scores, labels = _random_predictions(30, 3)
    m = compute_rock_metrics(scores, labels, 3, (1, 5))
    assert 'accuracy/top3' in m and 'accuracy/top5' not in m
    assert m['accuracy/top3'] == 100.0
    binary = compute_rock_metrics(*_random_predictions(20, 2), 2, (1, 5))
    assert binary['accuracy/top2'] == 100.0


def test_metric_class_logs_table_and_keeps_details():
    scores, labels = _random_predictions(40, 4)
    metric = RockMetric(topk=(1, 5))
    metric.dataset_meta = dict(classes=('Chert', 'Bauxite', 'Oolite', 'Other'))
    metric.process(None, [dict(pred_score=torch.tensor(s),
                               gt_label=torch.tensor([l]))
                          for s, l in zip(scores, labels)])
    out = metric.evaluate(40)
    assert set(out) == {'accuracy/top1', 'accuracy/top4', 'precision',
                        'recall', 'f1-score'}
    details = metric.last_details
    assert RockMetric.details_of(Evaluator([metric])) is details
    assert RockMetric.details_of(Evaluator([])) is None
    assert details['classes'] == ['Chert', 'Bauxite', 'Oolite', 'Other']
    assert np.array(details['confusion']).sum() == 40
    table = format_per_class_table(details, details['classes'])
    for name in ('Chert', 'Bauxite', 'macro avg', 'Precision', 'Support'):
        assert name in table


def test_macro_metrics_from_confusion_equal_the_metric():
    scores, labels = _random_predictions(150, 5, seed=3)
    labels[labels == 4] = 0  # a class without samples counts as 0
    full = compute_rock_metrics(scores, labels, 5, (1, ))
    counts = macro_metrics_from_confusion(confusion_matrix(
        labels, scores.argmax(1), labels=range(5)))
    for key in ('accuracy/top1', 'precision', 'recall', 'f1-score'):
        assert counts[key] == pytest.approx(full[key], abs=1e-12)
    assert np.isnan(macro_metrics_from_confusion(np.zeros((3, 3)))[
        'accuracy/top1'])
