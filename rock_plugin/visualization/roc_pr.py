"""ROC and precision-recall figures, one curve per class plus averages."""
from typing import Dict

import numpy as np

from rock_plugin.utils.atomic_io import atomic_save_figure

_AVERAGES = ('macro', 'micro')


def plot_roc_pr(curves: Dict[str, Dict[str, dict]], kind: str, out_file: str,
                title: str = '') -> str:
    """Draw ``curves[kind]`` (``kind`` ``'roc'`` or ``'pr'``) atomically
    into ``out_file``: a thin line a class (AUC / AP in the legend), thick
    dashed averages, ``title`` as the heading's prefix.

    Args:
        curves (dict): ``{'roc': {name: curve}, 'pr': {...}}``, each curve
            with ``x``, ``y`` and ``area`` (NaN: not drawn); ``'macro'`` and
            ``'micro'`` are drawn as averages. See
            :func:`rock_plugin.evaluation.functional.roc_pr.roc_pr_curves`.
        kind (str): ``'roc'`` or ``'pr'``.
        out_file (str): The image file.
        title (str): Heading prefix. Defaults to none.

    Returns:
        str: ``out_file``.
    """
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
