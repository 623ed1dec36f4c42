"""``RockMetric``: the original's accuracy / precision / recall / F1 / confusion."""
import io
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS
from sklearn.metrics import (confusion_matrix, precision_recall_fscore_support,
                             top_k_accuracy_score)


def compute_rock_metrics(scores: np.ndarray, labels: np.ndarray,
                         num_classes: int,
                         topk: Sequence[int] = (1, 5)) -> Dict[str, object]:
    """Compute every metric of the original trainer with sklearn.

    Args:
        scores (np.ndarray): ``(N, C)`` class scores.
        labels (np.ndarray): ``(N,)`` true labels.
        num_classes (int): ``C``.
        topk (Sequence[int]): Top-k accuracies to report; a ``k`` larger than
            the class count is capped to it (mmpretrain's ``Accuracy`` raises).

    Returns:
        dict: ``accuracy/top{k}`` (percent), macro ``precision``, ``recall``,
        ``f1-score`` (percent), per-class lists ``precision_per_class``,
        ``recall_per_class``, ``f1-score_per_class`` (percent), ``support``
        and ``confusion`` (rows true, columns predicted).

    Example:
        >>> m = compute_rock_metrics(np.eye(3), np.arange(3), 3, (1, 5))
        >>> m['accuracy/top1'], m['accuracy/top3']
        (100.0, 100.0)
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
    out['precision'] = float(np.mean(p)) * 100
    out['recall'] = float(np.mean(r)) * 100
    out['f1-score'] = float(np.mean(f)) * 100
    out['precision_per_class'] = (p * 100).tolist()
    out['recall_per_class'] = (r * 100).tolist()
    out['f1-score_per_class'] = (f * 100).tolist()
    out['support'] = s.tolist()
    out['confusion'] = confusion_matrix(labels, preds, labels=class_ids).tolist()
    return out


def macro_metrics_from_confusion(confusion) -> Dict[str, float]:
    """Top-1 and macro precision / recall / F1 (percent) from counts.

    The same definitions as :func:`compute_rock_metrics` (sklearn, classes
    without samples count as 0), from a confusion matrix: what a hook can
    sum over iterations and ranks without keeping every prediction.

    Args:
        confusion: ``(C, C)`` counts, rows true, columns predicted.

    Returns:
        dict: ``accuracy/top1``, ``precision``, ``recall``, ``f1-score``.

    Example:
        >>> macro_metrics_from_confusion([[2, 0], [1, 1]])['accuracy/top1']
        75.0
    """
    counts = np.asarray(confusion, dtype=np.float64)
    keys = ('accuracy/top1', 'precision', 'recall', 'f1-score')
    total = counts.sum()
    if not total:
        return dict.fromkeys(keys, float('nan'))
    true, pred = np.nonzero(counts)  # one weighted sample per cell
    p, r, f, _ = precision_recall_fscore_support(
        true, pred, labels=np.arange(counts.shape[0]), average=None,
        sample_weight=counts[true, pred], zero_division=0)
    return {
        'accuracy/top1': float(np.trace(counts) / total * 100),
        'precision': float(np.mean(p)) * 100,
        'recall': float(np.mean(r)) * 100,
        'f1-score': float(np.mean(f)) * 100,
    }


def format_per_class_table(metrics: Dict[str, object],
                           class_names: Sequence[str]) -> str:
    """Render the per-class precision / recall / F1 / support as a table.

    Args:
        metrics (dict): Output of :func:`compute_rock_metrics`.
        class_names (Sequence[str]): Names in label order.

    Returns:
        str: The table, with a macro-average row.
    """
    from rich.console import Console
    from rich.table import Table
    table = Table(title='Per-class results')
    for col in ('Class', 'Precision', 'Recall', 'F1-score', 'Support'):
        table.add_column(col, justify='left' if col == 'Class' else 'right')
    rows = zip(class_names, metrics['precision_per_class'],
               metrics['recall_per_class'], metrics['f1-score_per_class'],
               metrics['support'])
    for name, p, r, f, s in rows:
        table.add_row(name, f'{p:.2f}', f'{r:.2f}', f'{f:.2f}', str(s))
    table.add_row('macro avg', f"{metrics['precision']:.2f}",
                  f"{metrics['recall']:.2f}", f"{metrics['f1-score']:.2f}",
                  str(sum(metrics['support'])))
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(table)
    return buf.getvalue()


@METRICS.register_module()
class RockMetric(BaseMetric):
    """Top-k accuracy, per-class and macro precision/recall/F1, confusion.

    One metric for what the original computed with ``accuracy``,
    ``precision``, ``recall``, ``f1_score`` and ``confusion``
    (``average_mode='none'`` per class, plus macro means). The maths is
    sklearn's; the per-class values are logged as a table with class names.

    The returned scalars (``accuracy/top1``, ``accuracy/top5``,
    ``precision``, ``recall``, ``f1-score``) go to the log line and
    checkpoints' ``save_best``. The full result of the latest evaluation
    (per-class lists, support, confusion matrix, class names) is the
    attribute :attr:`last_details` (on the main process, where mmengine
    computes metrics), read by hooks through :meth:`details_of`, not the
    metrics dict: mmengine prints every non-scalar metric into the one-line
    epoch log and stores it in checkpoints.

    Args:
        topk (Sequence[int]): Top-k accuracies. Defaults to ``(1, 5)``.
        num_classes (int, optional): Defaults to the dataset's class count.
        log_table (bool): Log the per-class table. Defaults to True.
        collect_device (str): See :class:`mmengine.evaluator.BaseMetric`.
        prefix (str, optional): Metric name prefix. Defaults to none.

    Example:
        >>> val_evaluator = dict(type='RockMetric', topk=(1, 5))
    """
    # '' (not None): keys stay 'accuracy/top1' etc. without mmengine's
    # "prefix is not set" warning.
    default_prefix: Optional[str] = ''

    def __init__(self,
                 topk: Sequence[int] = (1, 5),
                 num_classes: Optional[int] = None,
                 log_table: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)
        self.num_classes = num_classes
        self.log_table = log_table
        #: The full result of the latest :meth:`compute_metrics`, or None.
        self.last_details: Optional[Dict[str, object]] = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(
                dict(
                    score=np.asarray(sample['pred_score'].cpu(),
                                     dtype=np.float64),
                    label=int(sample['gt_label'].item())))

    def _class_names(self, num_classes: int) -> List[str]:
        names = (self.dataset_meta or {}).get('classes')
        if names and len(names) == num_classes:
            return list(names)
        return [str(i) for i in range(num_classes)]

    def compute_metrics(self, results: List[dict]) -> Dict[str, object]:
        scores = np.stack([r['score'] for r in results])
        labels = np.array([r['label'] for r in results])
        num_classes = self.num_classes or scores.shape[1]
        metrics = compute_rock_metrics(scores, labels, num_classes, self.topk)
        names = self._class_names(num_classes)
        if self.log_table:
            print_log('\n' + format_per_class_table(metrics, names),
                      logger='current')
        self.last_details = dict(metrics, classes=names)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    @classmethod
    def details_of(cls, evaluator) -> Optional[Dict[str, object]]:
        """The latest full result of the first ``RockMetric`` of an
        evaluator (e.g. ``runner.val_loop.evaluator``), or None.

        Example:
            >>> details = RockMetric.details_of(runner.val_loop.evaluator)
            >>> details['confusion'], details['classes']
        """
        for metric in getattr(evaluator, 'metrics', None) or []:
            if isinstance(metric, cls):
                return metric.last_details
        return None
