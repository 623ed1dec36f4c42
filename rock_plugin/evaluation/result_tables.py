"""Result tables of an evaluation as CSV files (written atomically): the
per-class report, the per-image predictions, the confusion matrix and the
ROC / PR curves. The figures are :mod:`rock_plugin.visualization`'s; the
callers pair them."""
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write_csv
from .functional.roc_pr import roc_pr_curves


def write_per_class_csv(metrics: Dict[str, object],
                        class_names: Sequence[str], out_file: str) -> str:
    """Write (atomically) and return ``out_file``: per-class precision,
    recall, F1 (percent) and support from ``compute_rock_metrics``, then a
    ``macro avg`` row and ``accuracy/topK`` rows (in the ``f1-score``
    column, as sklearn's ``classification_report`` does).

    Example:
        >>> write_per_class_csv(details, ['a', 'b'], 'per_class.csv')
        'per_class.csv'
    """
    total = int(sum(metrics['support']))
    rows = [('class', 'precision', 'recall', 'f1-score', 'support')]
    for row in zip(class_names, metrics['precision_per_class'],
                   metrics['recall_per_class'],
                   metrics['f1-score_per_class'], metrics['support']):
        rows.append([row[0], *(f'{v:.4f}' for v in row[1:4]), int(row[4])])
    rows.append(['macro avg', *(f'{metrics[k]:.4f}' for k in
                                ('precision', 'recall', 'f1-score')), total])
    rows += [[key, '', '', f'{metrics[key]:.4f}', total] for key in
             sorted(k for k in metrics if k.startswith('accuracy/top'))]
    return atomic_write_csv(out_file, rows)


def write_prediction_csv(predictions: Sequence[dict],
                         class_names: Sequence[str], out_file: str) -> str:
    """Write (atomically) and return ``out_file``, the original's
    ``prediction_results.csv``: ``File, Pre_label, True_label, Success`` and
    each class's score, a row per image (``PredictionCollector``'s); then
    ``novelty`` and ``unknown`` when every prediction has them (an
    ``OpenSetLinearClsHead`` with a feature bank).

    Example:
        >>> write_prediction_csv(predictions, ['a', 'b'], 'preds.csv')
        'preds.csv'
    """
    header = ['File', 'Pre_label', 'True_label', 'Success', *class_names]
    # after the original's columns, so that its readers still fit
    open_set = bool(predictions) and all(p.get('novelty') is not None
                                         for p in predictions)
    if open_set:
        header += ['novelty', 'unknown']
    return atomic_write_csv(out_file, [header] + [
        [p['img_path'], class_names[p['pred_label']],
         class_names[p['gt_label']], p['pred_label'] == p['gt_label'],
         *(f'{s:.6f}' for s in p['pred_score']),
         *((f"{p['novelty']:.6f}", bool(p['unknown'])) if open_set else ())]
        for p in predictions])


def write_novelty_csv(rows: Sequence[Tuple[str, str, float, bool, str]],
                      out_file: str) -> str:
    """Write (atomically) and return ``out_file``: ``file, set, novelty,
    flagged, pred_class``, a row per image of an open-set test (``set``:
    ``known`` or ``unknown``; ``flagged``: novelty above the threshold).

    Example:
        >>> write_novelty_csv([('a.jpg', 'unknown', 3.2, True, 'Chert')],
        ...                   'novelty_scores.csv')
        'novelty_scores.csv'
    """
    return atomic_write_csv(out_file, [
        ['file', 'set', 'novelty', 'flagged', 'pred_class']] + [
        [f, group, f'{novelty:.6f}', bool(flagged), pred_class]
        for f, group, novelty, flagged, pred_class in rows])


def save_confusion_csv(matrix, class_names: Sequence[str],
                       out_file: str) -> str:
    """Write the matrix as CSV: rows true class, columns predicted class.

    Args:
        matrix: ``(C, C)`` counts, rows true, columns predicted.
        class_names (Sequence[str]): Names in label order.
        out_file (str): The CSV file.

    Returns:
        str: ``out_file``.

    Example:
        >>> save_confusion_csv([[2, 0], [1, 3]], ['a', 'b'], 'cm.csv')
        'cm.csv'
    """
    rows = zip(class_names, np.asarray(matrix).tolist())
    return atomic_write_csv(out_file, [['true \\ predicted', *class_names]] +
                            [[name, *row] for name, row in rows])


def write_roc_pr_csvs(curves: Dict[str, Dict[str, dict]], out_prefix: str
                      ) -> List[str]:
    """Write :func:`.roc_pr_curves`' ``<out_prefix>roc_pr_summary.csv``
    (``curve, auc, ap, positives``), ``roc_curves.csv`` (``curve, fpr, tpr,
    threshold``) and ``pr_curves.csv`` (``curve, recall, precision,
    threshold``) atomically.

    Args:
        curves (dict): From :func:`.roc_pr_curves`.
        out_prefix (str): Prefix of the three file names (a folder ends
            with a separator).

    Returns:
        list: The three paths.
    """
    files = [atomic_write_csv(out_prefix + 'roc_pr_summary.csv', [
        ['curve', 'auc', 'ap', 'positives']] + [
        [name, f"{roc['area']:.6f}", f"{curves['pr'][name]['area']:.6f}",
         roc['positives']] for name, roc in curves['roc'].items()])]
    for kind, cols in (('roc', ('fpr', 'tpr')),
                       ('pr', ('recall', 'precision'))):
        rows = [[name, f'{x:.6f}', f'{y:.6f}',
                 '' if np.isnan(t) else f'{t:.6f}']
                for name, c in curves[kind].items()
                for x, y, t in zip(c['x'], c['y'], c['thresholds'])]
        files.append(atomic_write_csv(f'{out_prefix}{kind}_curves.csv',
                                      [['curve', *cols, 'threshold']] + rows))
    return files


def save_roc_pr_tables(out_dir: str, predictions: Sequence[dict],
                       class_names: Sequence[str]
                       ) -> Tuple[Dict[str, Dict[str, dict]], Dict[str, str],
                                  Dict[str, Dict[str, float]]]:
    """Compute the one-vs-rest ROC and PR curves of a test run's
    ``predictions`` and write their CSVs into the existing ``out_dir``.

    Args:
        out_dir (str): Folder (exists).
        predictions (Sequence[dict]): ``PredictionCollector``'s, with
            ``gt_label`` and ``pred_score``.
        class_names (Sequence[str]): Names in label order.

    Returns:
        tuple: ``(curves, files, areas)``: :func:`.roc_pr_curves`' result
        (to draw), ``{kind: path}`` (``roc_pr_summary``, ``roc_csv``,
        ``pr_csv``) and ``{'roc_auc': {curve: AUC}, 'average_precision':
        {curve: AP}}`` for every class, ``macro`` and ``micro`` (NaN for a
        class absent from the labels).
    """
    scores = np.array([p['pred_score'] for p in predictions], np.float64)
    labels = np.array([p['gt_label'] for p in predictions])
    curves = roc_pr_curves(scores, labels, class_names)
    summary, roc_csv, pr_csv = write_roc_pr_csvs(curves,
                                                 osp.join(out_dir, ''))
    files = dict(roc_pr_summary=summary, roc_csv=roc_csv, pr_csv=pr_csv)
    areas = {key: {name: float(c['area']) for name, c in curves[kind].items()}
             for key, kind in (('roc_auc', 'roc'),
                               ('average_precision', 'pr'))}
    return curves, files, areas
