"""ROC and precision-recall figures, one curve per class plus averages."""
import os.path as osp
from typing import Dict, Sequence, Tuple

import numpy as np

from rock_plugin.utils.atomic_io import atomic_save_figure

_AVERAGES = ('macro', 'micro')


def plot_roc_pr(curves: Dict[str, Dict[str, dict]], kind: str, out_file: str,
                title: str = '') -> str:
    """Draw ``curves[kind]`` of :func:`.roc_pr_curves` (``kind`` ``'roc'``
    or ``'pr'``) atomically into ``out_file`` and return it: a thin line a
    class (AUC / AP in the legend), thick dashed averages, ``title`` as the
    heading's prefix."""
    # The object API: no pyplot state, safe off the main thread.
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    table = curves[kind]
    classes = [n for n in table if n not in _AVERAGES]
    from .fonts import plot_text
    labels = [plot_text(n) for n in classes]
    fig = Figure(figsize=(9.5, 6))
    ax = fig.subplots()
    cmap = colormaps['tab20']
    short = 'AUC' if kind == 'roc' else 'AP'
    for i, (name, label) in enumerate(zip(classes, labels)):
        curve = table[name]
        if np.isnan(curve['area']):
            continue
        ax.plot(curve['x'], curve['y'], lw=1.2, color=cmap(i % 20),
                label=f"{label} ({short} {curve['area']:.3f})",
                drawstyle='steps-post' if kind == 'pr' else 'default')
    for name, color in zip(_AVERAGES, ('black', 'dimgray')):
        curve = table.get(name)
        if curve is not None and not np.isnan(curve['area']):
            ax.plot(curve['x'], curve['y'], lw=2.5, ls='--', color=color,
                    label=f"{name} average ({short} {curve['area']:.3f})")
    if kind == 'roc':
        ax.plot([0, 1], [0, 1], ls=':', lw=1, color='gray')
        ax.set(xlabel='false positive rate', ylabel='true positive rate')
        heading = 'ROC curves (one vs rest)'
    else:
        ax.set(xlabel='recall', ylabel='precision')
        heading = 'Precision-recall curves (one vs rest)'
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02))
    ax.grid(alpha=0.3)
    ax.set_title(plot_text(f'{title}: {heading}' if title else heading))
    ax.legend(loc='center left', bbox_to_anchor=(1.01, 0.5), fontsize=7,
              frameon=False)
    fig.subplots_adjust(left=0.07, right=0.64, top=0.93, bottom=0.09)
    atomic_save_figure(fig, out_file, dpi=100)
    return out_file


def save_roc_pr(out_dir: str, predictions: Sequence[dict],
                class_names: Sequence[str], title: str = ''
                ) -> Tuple[Dict[str, str], Dict[str, Dict[str, float]]]:
    """Compute, draw (``title`` as prefix) and write into the existing
    ``out_dir`` the ROC and PR curves of a test run's ``predictions``
    (``PredictionCollector``'s ``gt_label`` and ``pred_score``).

    Returns:
        tuple: ``({kind: path}, areas)``, ``areas`` being ``{'roc_auc':
        {curve: AUC}, 'average_precision': {curve: AP}}`` for every class,
        ``macro`` and ``micro`` (NaN for a class absent from the labels).
    """
    from rock_plugin.evaluation.functional.roc_pr import roc_pr_curves, write_roc_pr_csvs
    scores = np.array([p['pred_score'] for p in predictions], np.float64)
    labels = np.array([p['gt_label'] for p in predictions])
    curves = roc_pr_curves(scores, labels, class_names)
    summary, roc_csv, pr_csv = write_roc_pr_csvs(curves,
                                                 osp.join(out_dir, ''))
    files = dict(roc_pr_summary=summary, roc_csv=roc_csv, pr_csv=pr_csv)
    for kind in ('roc', 'pr'):
        files[f'{kind}_png'] = plot_roc_pr(
            curves, kind, osp.join(out_dir, f'{kind}_curves.png'), title)
    areas = {key: {name: float(c['area']) for name, c in curves[kind].items()}
             for key, kind in (('roc_auc', 'roc'),
                               ('average_precision', 'pr'))}
    return files, areas
