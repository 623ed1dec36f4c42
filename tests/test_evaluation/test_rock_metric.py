"""ClassReportMetric (was RockMetric) equals sklearn; its confusion matrix
is mmpretrain's; its P/R/F1/top-k stay sklearn's (mmpretrain's are float32);
top-k capped; per-class table with names; the same macro values from
confusion counts (the training columns); the old name still builds."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from sklearn.metrics import (confusion_matrix, f1_score, precision_score,
                             recall_score)

from mmpretrain.evaluation import Accuracy, SingleLabelMetric
from mmpretrain.registry import METRICS

from rock_plugin.evaluation import (ClassReportMetric, RockMetric,
                                    compute_rock_metrics)
from rock_plugin.evaluation.metrics.class_report import (
    format_per_class_table, macro_metrics_from_confusion)

# builds by type name: mmpretrain's registry (conftest.mmpretrain_scope)
pytestmark = pytest.mark.usefixtures('mmpretrain_scope')


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
    metric = ClassReportMetric(topk=(1, 5))
    metric.dataset_meta = dict(classes=('Chert', 'Bauxite', 'Oolite', 'Other'))
    metric.process(None, [dict(pred_score=torch.tensor(s),
                               gt_label=torch.tensor([l]))
                          for s, l in zip(scores, labels)])
    out = metric.evaluate(40)
    assert set(out) == {'accuracy/top1', 'accuracy/top4', 'precision',
                        'recall', 'f1-score', 'ece'}
    from rock_plugin.evaluation.functional.calibration import \
        expected_calibration_error
    assert out['ece'] == pytest.approx(
        100 * expected_calibration_error(scores, labels))
    details = metric.last_details
    assert ClassReportMetric.details_of(Evaluator([metric])) is details
    assert ClassReportMetric.details_of(Evaluator([])) is None
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


def test_old_name_builds_the_same_metric():
    # Configs saved before the rename say type='RockMetric'.
    assert RockMetric is ClassReportMetric
    for name in ('RockMetric', 'ClassReportMetric'):
        metric = METRICS.build(dict(type=name, topk=(1, 3)))
        assert type(metric) is ClassReportMetric and metric.topk == (1, 3)


def _edge_case_predictions(n=300, c=7, seed=1):
    """Random scores with a class nobody has (3), a class never predicted
    (6) and rows of tied scores."""
    rng = np.random.default_rng(seed)
    scores = rng.random((n, c))
    scores[:, 6] = 0
    labels = rng.integers(0, c, n)
    labels[labels == 3] = 4
    scores[:15] = 0.5  # ties: argmax picks class 0
    return scores, labels


def test_confusion_is_mmpretrains_and_equals_sklearn():
    scores, labels = _edge_case_predictions()
    m = compute_rock_metrics(scores, labels, 7, (1, ))
    assert m['confusion'] == confusion_matrix(
        labels, scores.argmax(1), labels=range(7)).tolist()
    assert np.array(m['confusion'])[:, 0].sum() >= 15  # ties -> class 0
    # More score columns than classes: pairs outside the classes are left
    # out, as sklearn's confusion_matrix(labels=...) did.
    wide = compute_rock_metrics(scores, np.minimum(labels, 5), 6, (6, ))
    assert wide['confusion'] == confusion_matrix(
        np.minimum(labels, 5), scores.argmax(1), labels=range(6)).tolist()


def test_mmpretrain_maths_agree_only_to_float32():
    """Why precision/recall/F1 and top-k are not delegated to mmpretrain:
    the definitions agree (zero support, never predicted: 0) but
    ``SingleLabelMetric`` / ``Accuracy`` compute in float32."""
    scores, labels = _edge_case_predictions()
    m = compute_rock_metrics(scores, labels, 7, (1, ))
    theirs = SingleLabelMetric.calculate(
        torch.from_numpy(scores.argmax(1)), torch.from_numpy(labels),
        average=None, num_classes=7)
    worst = 0.0
    for key, value in zip(('precision', 'recall', 'f1-score'), theirs):
        ours = np.array(m[f'{key}_per_class'])
        np.testing.assert_allclose(ours, value.double().numpy(), atol=1e-4)
        worst = max(worst, np.abs(ours - value.double().numpy()).max())
    assert m['precision_per_class'][3] == m['recall_per_class'][3] == 0
    assert m['precision_per_class'][6] == 0
    assert worst > 1e-9, ('mmpretrain now agrees to 1e-9: delegate P/R/F1 '
                          'to SingleLabelMetric.calculate')
    tie_free, labels = _random_predictions(300, 7, seed=2)
    m = compute_rock_metrics(tie_free, labels, 7, (1, 2, 5))
    accs = Accuracy.calculate(torch.from_numpy(tie_free),
                              torch.from_numpy(labels), topk=(1, 2, 5),
                              thrs=(None, ))
    for k, (acc, ) in zip((1, 2, 5), accs):
        assert m[f'accuracy/top{k}'] == pytest.approx(acc.item(), abs=1e-4)
