"""Cross-validation summary: per-fold and mean ± std metrics, pooled OOF."""
import io
import os.path as osp
from typing import Dict, Sequence

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write_csv, atomic_write_json
from .functional.calibration import (CROSSFIT_PARTS,
                                     crossfit_temperature_scores,
                                     expected_calibration_error)
from .metrics.class_report import compute_rock_metrics
from .result_tables import save_confusion_csv

# (column, compute_rock_metrics key); values in percent.
SUMMARY_METRICS = (('top1', 'accuracy/top1'), ('precision', 'precision'),
                   ('recall', 'recall'), ('f1', 'f1-score'), ('ece', 'ece'))


def _metrics(predictions: Sequence[dict], num_classes: int) -> dict:
    scores = np.array([p['pred_score'] for p in predictions], np.float64)
    labels = np.array([p['gt_label'] for p in predictions])
    return compute_rock_metrics(scores, labels, num_classes, topk=(1, ))


def _crossfit(predictions: Sequence[dict]):
    """One fold's scores with temperatures fitted on its other images, and
    its labels; None without every prediction's ``raw_score`` (a model
    without a temperature, or a run from before it was kept)."""
    if not predictions or not all('raw_score' in p for p in predictions):
        return None
    labels = np.array([p['gt_label'] for p in predictions])
    raw = np.array([p['raw_score'] for p in predictions], np.float64)
    return crossfit_temperature_scores(
        raw, labels, min(CROSSFIT_PARTS, len(labels))), labels


def summarize_folds(fold_predictions: Dict[int, Sequence[dict]],
                    class_names: Sequence[str]) -> dict:
    """Metrics of every fold, their mean and std, and the pooled result.

    Args:
        fold_predictions (dict): ``{fold: PredictionCollector predictions}``.
        class_names (Sequence[str]): Names in label order.

    Returns:
        dict: ``folds`` (a row per fold: ``fold``, ``top1``, macro
        ``precision``, ``recall``, ``f1``, ``f1/<class>``; percent),
        ``mean``, ``std`` (``ddof=1``), ``pooled`` (all out-of-fold
        predictions' :func:`compute_rock_metrics`), ``num_images``,
        ``classes``. When every prediction has ``raw_score``, also
        ``ece_crossfit`` in each row and in ``pooled``: the ECE with each
        image's temperature fitted on the other images of its fold
        (:func:`crossfit_temperature_scores`), where ``ece`` is measured on
        the images that fitted it.
    """
    rows, crossfit = [], []
    for k, preds in sorted(fold_predictions.items()):
        m = _metrics(preds, len(class_names))
        rows.append(dict(fold=k, **{c: m[key] for c, key in SUMMARY_METRICS},
                         **{f'f1/{n}': f for n, f in
                            zip(class_names, m['f1-score_per_class'])}))
        crossfit.append(_crossfit(preds))
    if all(c is not None for c in crossfit):
        for row, (scores, labels) in zip(rows, crossfit):
            row['ece_crossfit'] = expected_calibration_error(
                scores, labels) * 100
    keys = [k for k in rows[0] if k != 'fold']
    table = np.array([[r[k] for k in keys] for r in rows], np.float64)
    std = table.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(keys))
    pooled = [p for k in sorted(fold_predictions)
              for p in fold_predictions[k]]
    pooled_metrics = _metrics(pooled, len(class_names))
    if 'ece_crossfit' in rows[0]:
        pooled_metrics['ece_crossfit'] = expected_calibration_error(
            np.concatenate([c[0] for c in crossfit]),
            np.concatenate([c[1] for c in crossfit])) * 100
    return dict(folds=rows, mean=dict(zip(keys, table.mean(axis=0).tolist())),
                std=dict(zip(keys, std.tolist())), pooled=pooled_metrics,
                num_images=len(pooled), classes=list(class_names))


def format_cv_table(summary: dict, title: str = 'Cross-validation') -> str:
    """The per-fold table with a mean ± std row, then per-class F1.

    Args:
        summary (dict): From :func:`summarize_folds`.
        title (str): Table title.

    Returns:
        str: Both tables as text.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from rock_plugin.utils.text import printable
    folds = Table(title=f'{title}: per fold (percent)')
    cols = [c for c, _ in SUMMARY_METRICS]
    heads = ['fold', 'top-1', 'macro P', 'macro R', 'macro F1', 'ECE']
    if 'ece_crossfit' in summary['folds'][0]:
        # the temperature fitted on other images than those it scales
        cols.append('ece_crossfit')
        heads.append('ECE, T fitted apart')
    for col in heads:
        folds.add_column(col, justify='right')
    for row in summary['folds']:
        folds.add_row(str(row['fold']), *(f'{row[c]:.2f}' for c in cols))
    folds.add_row('mean ± std', *(
        f"{summary['mean'][c]:.2f} ± {summary['std'][c]:.2f}" for c in cols))
    per_class = Table(title=f'{title}: per-class F1 over folds (percent)')
    for col in ('class', 'F1 mean ± std', 'pooled F1', 'images'):
        per_class.add_column(col, justify='left' if col == 'class'
                             else 'right')
    pooled = summary['pooled']
    for i, name in enumerate(summary['classes']):
        mean, std = summary['mean'][f'f1/{name}'], summary['std'][f'f1/{name}']
        # Text: a class name like '[bold]' is not rich markup.
        per_class.add_row(Text(printable(name)), f'{mean:.2f} ± {std:.2f}',
                          f"{pooled['f1-score_per_class'][i]:.2f}",
                          str(pooled['support'][i]))
    buf = io.StringIO()
    console = Console(file=buf, width=120, color_system=None)
    console.print(folds)
    console.print(per_class)
    return buf.getvalue()


def save_cv_results(out_dir: str, summary: dict,
                    fold_predictions: Dict[int, Sequence[dict]],
                    suffix: str = '') -> Dict[str, str]:
    """Write ``cv_summary.csv/.json``, ``oof_predictions.csv`` (``file,
    true, predicted, fold`` and a score per class) and the pooled
    ``oof_confusion_matrix.csv``, ``suffix`` before each dot; its figure
    is the caller's (:func:`rock_plugin.visualization.plot_confusion_matrix`,
    ``tools/cross_validate.py``).

    Args:
        out_dir (str): Folder (exists).
        summary (dict): From :func:`summarize_folds`.
        fold_predictions (dict): ``{fold: predictions}``.
        suffix (str): File name suffix, e.g. ``'_tta'``.

    Returns:
        dict: ``{kind: path}``.
    """
    names = summary['classes']
    join = lambda stem, ext: osp.join(out_dir, f'{stem}{suffix}.{ext}')  # noqa
    files = dict(summary_csv=join('cv_summary', 'csv'),
                 summary_json=join('cv_summary', 'json'),
                 oof_predictions=join('oof_predictions', 'csv'))
    keys = [k for k in summary['folds'][0] if k != 'fold']
    table = [(r['fold'], r) for r in summary['folds']] + [
        ('mean', summary['mean']), ('std', summary['std'])]
    atomic_write_csv(files['summary_csv'], [['fold', *keys]] + [
        [name, *(f'{row[k]:.4f}' for k in keys)] for name, row in table])
    atomic_write_json(files['summary_json'], summary)
    atomic_write_csv(files['oof_predictions'], [
        ['file', 'true', 'predicted', 'fold', *names]] + [
        [p['img_path'], names[p['gt_label']],
         names[int(np.argmax(p['pred_score']))], k,
         *(f'{s:.6f}' for s in p['pred_score'])]
        for k in sorted(fold_predictions) for p in fold_predictions[k]])
    files['confusion_csv'] = save_confusion_csv(
        summary['pooled']['confusion'], names,
        join('oof_confusion_matrix', 'csv'))
    return files
