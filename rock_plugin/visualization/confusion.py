"""Confusion-matrix image with class names on the axes (its CSV:
:func:`rock_plugin.evaluation.save_confusion_csv`)."""
from typing import Sequence

import numpy as np

from rock_plugin.utils.atomic_io import atomic_save_figure


def plot_confusion_matrix(matrix, class_names: Sequence[str], out_file: str,
                          title: str = 'Confusion matrix') -> str:
    """Draw ``(C, C)`` counts (rows true, columns predicted) and their
    row-normalised (recall) matrix side by side, titled ``title``, into
    ``out_file`` (atomically); returns ``out_file``."""
    # The object API: no pyplot state, so hooks can draw off the main thread.
    from matplotlib.figure import Figure
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros(counts.shape, float),
                     where=totals > 0)
    from .fonts import drawable_names, plot_text
    n = len(class_names)
    labels, family = drawable_names(class_names)
    size = max(5.0, 0.55 * n + 2.5)
    fig = Figure(figsize=(2 * size + 1, size))
    axes = fig.subplots(1, 2)
    for ax, data, sub, fmt in ((axes[0], counts, 'counts', 'd'),
                               (axes[1], norm, 'row-normalised', '.2f')):
        im = ax.imshow(data, cmap='Blues', vmin=0,
                       vmax=max(1, data.max()) if fmt == 'd' else 1)
        ax.set_title(plot_text(f'{title} ({sub})'))
        ax.set_xticks(range(n), labels, rotation=60, ha='right',
                      fontsize=8, family=family)
        ax.set_yticks(range(n), labels, fontsize=8, family=family)
        ax.set(xlabel='predicted', ylabel='true')
        thresh = data.max() / 2 if data.size else 0
        for i in range(n):
            for j in range(n):
                value = data[i, j]
                if fmt == 'd' and value == 0:
                    continue
                ax.text(j, i, format(value, fmt), ha='center', va='center',
                        fontsize=7,
                        color='white' if value > thresh else 'black')
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    atomic_save_figure(fig, out_file, dpi=100)
    return out_file
