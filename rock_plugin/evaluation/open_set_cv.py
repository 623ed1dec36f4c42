"""Open-set cross-validation summary: per repeat (classes left out of
training), how well the novelty score tells their images from the known
classes' validation images; mean ± std over repeats."""
import io
import os.path as osp
from typing import Dict, Sequence

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write_csv, atomic_write_json
from .functional.calibration import open_set_report

#: (column, heading); AUROCs are fractions, the rest percent.
OPEN_SET_METRICS = (
    ('auroc', 'AUROC novelty'), ('msp_auroc', 'AUROC max-softmax'),
    ('unknown_flagged', 'unknowns flagged %'),
    ('known_flagged', 'knowns flagged %'), ('top1', 'known top-1 %'))


def open_set_metrics(predictions: Sequence[dict], num_known: int,
                     threshold: float) -> dict:
    """Scores of one repeat: images labelled below ``num_known`` are known
    (validation fold), the others unknown (classes left out of training).

    Args:
        predictions (Sequence[dict]): ``PredictionCollector``'s:
            ``gt_label``, ``pred_score`` (over the known classes) and
            ``novelty``.
        num_known (int): Number of known classes.
        threshold (float): The head's novelty threshold; above it an image
            is flagged unknown.

    Returns:
        dict: ``auroc`` (novelty, unknown positive), ``msp_auroc`` (``1 -
        max pred_score`` as the score), ``unknown_flagged``,
        ``known_flagged`` (percent flagged), ``top1`` (percent, known
        images), ``threshold``, ``known_images``, ``unknown_images``.

    Example:
        >>> p = [dict(gt_label=0, pred_score=[.9, .1], novelty=-1.),
        ...      dict(gt_label=2, pred_score=[.6, .4], novelty=3.)]
        >>> open_set_metrics(p, 2, 0.)['auroc']
        1.0
    """
    known = [p for p in predictions if p['gt_label'] < num_known]
    unknown = [p for p in predictions if p['gt_label'] >= num_known]
    if any(p.get('novelty') is None for p in predictions):
        raise ValueError('a prediction has no novelty score: the head has '
                         'no feature bank')

    def column(preds, fn):
        return np.array([fn(p) for p in preds], np.float64)

    def msp(p):
        return 1.0 - max(p['pred_score'])

    novelty = open_set_report(column(known, lambda p: p['novelty']),
                              column(unknown, lambda p: p['novelty']),
                              threshold)
    baseline = open_set_report(column(known, msp), column(unknown, msp),
                               float('inf'))
    hits = column(known, lambda p: int(np.argmax(p['pred_score'])) ==
                  p['gt_label'])
    return dict(auroc=novelty['auroc'], msp_auroc=baseline['auroc'],
                unknown_flagged=100 * novelty['unknown_flagged'],
                known_flagged=100 * novelty['known_flagged'],
                top1=100 * float(hits.mean()) if len(hits) else float('nan'),
                threshold=float(threshold), known_images=len(known),
                unknown_images=len(unknown))


def summarize_open_set(rows: Sequence[dict]) -> dict:
    """Mean and std (``ddof=1``; 0 for one repeat) of
    :data:`OPEN_SET_METRICS` over the repeats.

    Args:
        rows (Sequence[dict]): Per repeat, :func:`open_set_metrics` plus
            ``repeat``, ``left_out`` and ``known`` (class names).

    Returns:
        dict: ``repeats`` (the rows), ``mean``, ``std``, ``num_repeats``.

    Example:
        >>> summarize_open_set([dict(auroc=.9, msp_auroc=.6, top1=100.,
        ...     unknown_flagged=50., known_flagged=5.)] * 2)['mean']['auroc']
        0.9
    """
    keys = [k for k, _ in OPEN_SET_METRICS]
    table = np.array([[r[k] for k in keys] for r in rows], np.float64)
    std = table.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(keys))
    return dict(repeats=list(rows),
                mean=dict(zip(keys, table.mean(axis=0).tolist())),
                std=dict(zip(keys, std.tolist())), num_repeats=len(rows))


def _fmt(key: str, value: float) -> str:
    return f'{value:.3f}' if 'auroc' in key else f'{value:.1f}'


def format_open_set_table(summary: dict,
                          title: str = 'Open-set cross-validation') -> str:
    """A row per repeat (classes left out, image counts, the metrics) and
    a mean ± std row.

    Args:
        summary (dict): From :func:`summarize_open_set`.
        title (str): Table title.

    Returns:
        str: The table as text.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from rock_plugin.utils.text import printable
    table = Table(title=title)
    table.add_column('repeat', justify='right')
    table.add_column('left out')
    table.add_column('known / unknown images', justify='right')
    for _, heading in OPEN_SET_METRICS:
        table.add_column(heading, justify='right')
    for row in summary['repeats']:
        # Text: a class name like '[bold]' is not rich markup.
        table.add_row(str(row['repeat']),
                      Text(printable(', '.join(row['left_out']))),
                      f"{row['known_images']} / {row['unknown_images']}",
                      *(_fmt(k, row[k]) for k, _ in OPEN_SET_METRICS))
    table.add_row('mean ± std', '', '', *(
        f"{_fmt(k, summary['mean'][k])} ± {_fmt(k, summary['std'][k])}"
        for k, _ in OPEN_SET_METRICS))
    buf = io.StringIO()
    Console(file=buf, width=140, color_system=None).print(table)
    return buf.getvalue()


def save_open_set_results(out_dir: str, summary: dict,
                          predictions: Dict[int, Sequence[dict]]
                          ) -> Dict[str, str]:
    """Write ``open_set_cv.csv`` (a row per repeat, then ``mean`` and
    ``std``), ``open_set_cv.json`` (the summary) and
    ``open_set_predictions.csv`` (``repeat, file, true, known, predicted,
    score, novelty, flagged``).

    Args:
        out_dir (str): Folder (exists).
        summary (dict): From :func:`summarize_open_set`.
        predictions (dict): ``{repeat: PredictionCollector predictions}``.

    Returns:
        dict: ``{kind: path}``.
    """
    files = {kind: osp.join(out_dir, name) for kind, name in (
        ('summary_csv', 'open_set_cv.csv'),
        ('summary_json', 'open_set_cv.json'),
        ('predictions', 'open_set_predictions.csv'))}
    keys = [k for k, _ in OPEN_SET_METRICS]
    head = ['repeat', 'left_out', 'known_images', 'unknown_images', *keys,
            'threshold']
    rows = [[r['repeat'], '; '.join(r['left_out']), r['known_images'],
             r['unknown_images'], *(f'{r[k]:.4f}' for k in keys),
             f"{r['threshold']:.4f}"] for r in summary['repeats']]
    rows += [[name, '', '', '', *(f'{summary[name][k]:.4f}' for k in keys),
              ''] for name in ('mean', 'std')]
    atomic_write_csv(files['summary_csv'], [head] + rows)
    atomic_write_json(files['summary_json'], summary)
    lines = [['repeat', 'file', 'true', 'known', 'predicted', 'score',
              'novelty', 'flagged']]
    for row in summary['repeats']:
        names = [*row['known'], *row['left_out']]
        for p in predictions[row['repeat']]:
            lines.append([
                row['repeat'], p['img_path'], names[p['gt_label']],
                int(p['gt_label'] < len(row['known'])),
                names[int(np.argmax(p['pred_score']))],
                f"{max(p['pred_score']):.6f}", f"{p['novelty']:.6f}",
                int(p['novelty'] > row['threshold'])])
    atomic_write_csv(files['predictions'], lines)
    return files
