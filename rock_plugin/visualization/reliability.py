"""Reliability diagram: per-bin accuracy against confidence, before and
after the temperature."""
from typing import Sequence

import numpy as np

from rock_plugin.utils.atomic_io import atomic_save_figure

_COLORS = ('tab:orange', 'tab:blue', 'tab:green', 'tab:red')


def plot_reliability(series: Sequence[dict], out_file: str,
                     title: str = '') -> str:
    """Draw a reliability diagram atomically into ``out_file``: for each
    series, the accuracy of each confidence bin as a bar (side by side
    within a bin; an empty bin has none), the diagonal of perfect
    calibration, the ECE in the legend; below, the images per bin.

    Args:
        series (Sequence[dict]): One per set of scores (e.g. before and
            after the temperature), each with ``label`` and the bins of
            :func:`rock_plugin.evaluation.functional.calibration.
            calibration_bins`: ``edges`` (``B + 1``), ``count``,
            ``confidence``, ``accuracy`` (NaN: empty bin) and ``ece`` (a
            fraction).
        out_file (str): The image file.
        title (str): Heading prefix. Defaults to none.

    Returns:
        str: ``out_file``.

    Example:
        >>> bins = calibration_bins(scores, labels)
        >>> plot_reliability([dict(label='T = 1', **bins)], 'rel.png')
        'rel.png'
    """
    # The object API: no pyplot state, safe off the main thread.
    from matplotlib.figure import Figure

    from .fonts import plot_text
    fig = Figure(figsize=(7.5, 7))
    top, bottom = fig.subplots(2, 1, sharex=True,
                               gridspec_kw=dict(height_ratios=(3, 1)))
    n = max(len(series), 1)
    for i, s in enumerate(series):
        edges = np.asarray(s['edges'], dtype=np.float64)
        width = np.diff(edges) / n
        left = edges[:-1] + i * width
        acc = np.asarray(s['accuracy'], dtype=np.float64)
        shown = ~np.isnan(acc)
        color = _COLORS[i % len(_COLORS)]
        top.bar(left[shown], acc[shown], width[shown], align='edge',
                color=color, alpha=0.75, edgecolor='black', linewidth=0.4,
                label=plot_text(f"{s['label']}: ECE {s['ece'] * 100:.2f} %"))
        top.plot(np.asarray(s['confidence'])[shown], acc[shown], ls='none',
                 marker='o', ms=3, color=color)
        bottom.bar(left, np.asarray(s['count']), width, align='edge',
                   color=color, alpha=0.75)
    top.plot([0, 1], [0, 1], ls='--', color='gray', lw=1,
             label='perfect calibration')
    top.set(ylabel='accuracy', xlim=(0, 1), ylim=(0, 1.02))
    top.grid(alpha=0.3)
    top.legend(loc='upper left', fontsize=8)
    heading = 'Reliability (top-label confidence)'
    top.set_title(plot_text(f'{title}: {heading}' if title else heading))
    bottom.set(xlabel='confidence (dots: mean of the bin)', ylabel='images')
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, out_file, dpi=100)
    return out_file
