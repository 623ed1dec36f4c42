"""``ClassReportMetric``: top-k accuracy, per-class and macro precision,
recall and F1, and the confusion matrix (was ``RockMetric``)."""
import io
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.evaluation import ConfusionMatrix
from mmpretrain.registry import METRICS
from sklearn.metrics import (precision_recall_fscore_support,
                             top_k_accuracy_score)

from rock_plugin.utils.text import printable
from ..functional.calibration import expected_calibration_error


def compute_rock_metrics(scores: np.ndarray, labels: np.ndarray,
                         num_classes: int,
                         topk: Sequence[int] = (1, 5)) -> Dict[str, object]:
    """Compute every metric of the original trainer.

    The confusion matrix is mmpretrain's :meth:`ConfusionMatrix.calculate`
    (integer counts, argmax ties to the first class, as here). Precision,
    recall, F1 and top-k stay sklearn's in float64: mmpretrain's
    ``SingleLabelMetric`` / ``Accuracy`` compute them in float32 (about 1e-6
    off) and pick ties with ``torch.topk``, so their numbers would change
    (``tests/test_evaluation/test_rock_metric.py`` pins both facts).

    Args:
        scores (np.ndarray): ``(N, C)`` class scores.
        labels (np.ndarray): ``(N,)`` true labels.
        num_classes (int): ``C``.
        topk (Sequence[int]): Top-k accuracies; ``k`` is capped to ``C``.

    Returns:
        dict: Percentages ``accuracy/top{k}``, macro ``precision``,
        ``recall``, ``f1-score``, ``ece`` (expected calibration error) and
        the first three's ``<name>_per_class`` lists; the
        ``support`` list and ``confusion`` (rows true, columns predicted).

    Example:
        >>> compute_rock_metrics(np.eye(3), np.arange(3), 3)['accuracy/top3']
        100.0
    """
    class_ids = np.arange(num_classes)
    preds = scores.argmax(axis=1)
    out: Dict[str, object] = {}
    for k in sorted({min(int(k), num_classes) for k in topk}):
        if k >= num_classes:
            acc = 1.0  # every label is within the top num_classes scores
        elif num_classes == 2:
            acc = float((preds == labels).mean())
        else:
            acc = top_k_accuracy_score(labels, scores, k=k, labels=class_ids)
        out[f'accuracy/top{k}'] = float(acc) * 100
    p, r, f, s = precision_recall_fscore_support(
        labels, preds, labels=class_ids, average=None, zero_division=0)
    macro = (('precision', p), ('recall', r), ('f1-score', f))
    out.update({k: float(np.mean(v)) * 100 for k, v in macro})
    out.update({f'{k}_per_class': (v * 100).tolist() for k, v in macro})
    out['support'] = s.tolist()
    # top-label expected calibration error of the scores, 15 bins
    out['ece'] = expected_calibration_error(scores, labels) * 100
    # Pairs outside the classes left out, as sklearn's confusion_matrix
    # (with labels=) did: bincount would fold them into other cells.
    labels = np.asarray(labels, dtype=np.int64)
    kept = (labels >= 0) & (labels < num_classes) & (preds < num_classes)
    out['confusion'] = ConfusionMatrix.calculate(
        torch.from_numpy(preds[kept]), torch.from_numpy(labels[kept]),
        num_classes=num_classes).tolist()
    return out


def macro_metrics_from_confusion(confusion) -> Dict[str, float]:
    """:func:`compute_rock_metrics`' ``accuracy/top1`` and macro
    ``precision``, ``recall``, ``f1-score`` from ``(C, C)`` counts (rows
    true), which a hook can sum over iterations and ranks."""
    counts = np.asarray(confusion, dtype=np.float64)
    keys = ('accuracy/top1', 'precision', 'recall', 'f1-score')
    total = counts.sum()
    if not total:
        return dict.fromkeys(keys, float('nan'))
    true, pred = np.nonzero(counts)  # one weighted sample per cell
    p, r, f, _ = precision_recall_fscore_support(
        true, pred, labels=np.arange(counts.shape[0]), average=None,
        sample_weight=counts[true, pred], zero_division=0)
    out = {k: float(np.mean(v)) * 100 for k, v in zip(keys[1:], (p, r, f))}
    return {'accuracy/top1': float(np.trace(counts) / total * 100), **out}


def format_per_class_table(metrics: Dict[str, object],
                           class_names: Sequence[str]) -> str:
    """:func:`compute_rock_metrics`' per-class precision / recall / F1 /
    support with a macro-average row, as a text table; class names shown as
    they are, escapes and ``[markup]`` inert."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    table = Table(title='Per-class results')
    for col in ('Class', 'Precision', 'Recall', 'F1-score', 'Support'):
        table.add_column(col, justify='left' if col == 'Class' else 'right')
    rows = zip(class_names, metrics['precision_per_class'],
               metrics['recall_per_class'], metrics['f1-score_per_class'],
               metrics['support'])
    for name, p, r, f, s in rows:
        table.add_row(Text(printable(name, one_line=True)), f'{p:.2f}',
                      f'{r:.2f}', f'{f:.2f}', str(s))
    table.add_row('macro avg', f"{metrics['precision']:.2f}",
                  f"{metrics['recall']:.2f}", f"{metrics['f1-score']:.2f}",
                  str(sum(metrics['support'])))
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(table)
    return buf.getvalue()


# 'RockMetric': the old name, kept so that saved configs still build.
@METRICS.register_module(name=['ClassReportMetric', 'RockMetric'])
class ClassReportMetric(BaseMetric):
    """Top-k accuracy, per-class and macro precision/recall/F1, confusion.

    Returns the scalars of :func:`compute_rock_metrics`; the full result
    (class names added) is :attr:`last_details`, kept out of the metrics,
    which mmengine prints in the log line and stores in checkpoints.

    Args:
        topk (Sequence[int]): Top-k accuracies. Defaults to ``(1, 5)``.
        num_classes (int, optional): Defaults to the dataset's class count.
        log_table (bool): Log the per-class table. Defaults to True.
        collect_device (str): See :class:`mmengine.evaluator.BaseMetric`.
        prefix (str, optional): Metric name prefix. Defaults to none.

    Example:
        >>> val_evaluator = dict(type='ClassReportMetric', topk=(1, 5))
    """
    # '' (not None): no "prefix is not set" warning from mmengine.
    default_prefix: Optional[str] = ''

    def __init__(self, topk: Sequence[int] = (1, 5),
                 num_classes: Optional[int] = None, log_table: bool = True,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)
        self.num_classes = num_classes
        self.log_table = log_table
        #: The full result of the latest :meth:`compute_metrics`, or None.
        self.last_details: Optional[Dict[str, object]] = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        self.results.extend(
            dict(score=np.asarray(s['pred_score'].cpu(), dtype=np.float64),
                 label=int(s['gt_label'].item())) for s in data_samples)

    def compute_metrics(self, results: List[dict]) -> Dict[str, object]:
        scores = np.stack([r['score'] for r in results])
        labels = np.array([r['label'] for r in results])
        num_classes = self.num_classes or scores.shape[1]
        metrics = compute_rock_metrics(scores, labels, num_classes, self.topk)
        names = list((self.dataset_meta or {}).get('classes') or [])
        if len(names) != num_classes:
            names = [str(i) for i in range(num_classes)]
        if self.log_table:
            print_log('\n' + format_per_class_table(metrics, names),
                      logger='current')
        self.last_details = dict(metrics, classes=names)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    @classmethod
    def details_of(cls, evaluator) -> Optional[Dict[str, object]]:
        """The latest full result of an evaluator's (e.g.
        ``runner.val_loop.evaluator``) first metric of this class, or
        None."""
        for metric in getattr(evaluator, 'metrics', None) or []:
            if isinstance(metric, cls):
                return metric.last_details
        return None


#: Deprecated alias of :class:`ClassReportMetric`.
RockMetric = ClassReportMetric
