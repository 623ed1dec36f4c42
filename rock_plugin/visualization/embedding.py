"""Scatter plot of a 2-D feature map (t-SNE / UMAP), coloured by class."""
from typing import Optional, Sequence

import numpy as np

from rock_plugin.utils.atomic_io import atomic_save_figure


def plot_embedding(points: np.ndarray, labels: Sequence[int],
                   class_names: Sequence[str], out_file: str,
                   unknown_points: Optional[np.ndarray] = None,
                   title: str = 'Feature map') -> str:
    """Draw ``points`` coloured by class, and ``unknown_points`` as black
    crosses, atomically into ``out_file`` (legend beside the axes).

    Args:
        points (np.ndarray): ``(N, 2)`` coordinates of the known images.
        labels (Sequence[int]): Their classes (indices of
            ``class_names``).
        class_names (Sequence[str]): Names in label order.
        out_file (str): The image file.
        unknown_points (np.ndarray, optional): ``(M, 2)`` coordinates of
            images of no trained class.
        title (str): The heading.

    Returns:
        str: ``out_file``.

    Example:
        >>> plot_embedding(np.random.rand(4, 2), [0, 0, 1, 1], ['a', 'b'],
        ...                'embedding.png')
        'embedding.png'
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from .fonts import drawable_names, plot_text
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.int64)
    names, family = drawable_names(class_names)
    cmap = colormaps['tab20' if len(names) > 10 else 'tab10']
    fig = Figure(figsize=(9.5, 6.5))
    ax = fig.subplots()
    for c, name in enumerate(names):
        mine = labels == c
        if mine.any():
            ax.scatter(points[mine, 0], points[mine, 1], s=22,
                       color=cmap(c % cmap.N), edgecolors='white',
                       linewidths=0.4, label=f'{name} ({int(mine.sum())})')
    if unknown_points is not None and len(unknown_points):
        unknown_points = np.asarray(unknown_points, np.float64)
        ax.scatter(unknown_points[:, 0], unknown_points[:, 1], s=30,
                   marker='x', color='black', linewidths=1.2,
                   label=f'unknown ({len(unknown_points)})')
    ax.set(xticks=[], yticks=[])
    ax.set_title(plot_text(title))
    legend = ax.legend(loc='center left', bbox_to_anchor=(1.01, 0.5),
                       fontsize=8, frameon=False)
    if family:
        for text in legend.get_texts():
            text.set_family(family)
    fig.subplots_adjust(left=0.03, right=0.68, top=0.93, bottom=0.04)
    atomic_save_figure(fig, out_file, dpi=100)
    return out_file
