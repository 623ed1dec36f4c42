"""Training curves from ``history.csv`` files (one or several runs)."""
import csv
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from rock_plugin.utils.atomic_io import atomic_save_figure

# (column, title) of each panel; a panel is drawn when some run has the column.
PANELS = (('train_loss', 'Train loss'), ('accuracy/top1', 'Top-1 accuracy (%)'),
          ('precision', 'Precision, macro (%)'), ('recall', 'Recall, macro (%)'),
          ('f1-score', 'F1-score, macro (%)'), ('lr', 'Learning rate'))


def read_history(path: str) -> List[Dict[str, str]]:
    """Read a ``history.csv`` written by :class:`HistoryHook`.

    Args:
        path (str): The CSV file, or a work dir holding ``history.csv``.

    Returns:
        list[dict]: One dict a row, values as strings ('' when missing).
    """
    if osp.isdir(path):
        path = osp.join(path, 'history.csv')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no history file (train a model first)')
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def _series(rows, column):
    xs, ys = [], []
    for row in rows:
        value = row.get(column, '')
        if value not in ('', None):
            xs.append(int(row['epoch']))
            ys.append(float(value))
    return xs, ys


def plot_curves(histories: Union[Sequence[Dict[str, str]],
                                 Dict[str, Sequence[Dict[str, str]]]],
                out_file: str,
                title: Optional[str] = None) -> str:
    """Draw loss, accuracy, precision, recall, F1 and LR against epoch.

    Args:
        histories: Rows of one run, or ``{run name: rows}`` to compare runs
            on one figure.
        out_file (str): Image to write (atomically).
        title (str, optional): Figure title.

    Returns:
        str: ``out_file``.

    Example:
        >>> plot_curves(read_history('work_dirs/rock_b4'), 'curves.png')
    """
    # The object API (no pyplot): no global backend switch, no figure
    # registry, so HistoryHook can draw from a background thread.
    from matplotlib.figure import Figure
    if not isinstance(histories, dict):
        histories = {'': histories}
    panels = [(col, name) for col, name in PANELS
              if any(_series(rows, col)[0] for rows in histories.values())]
    if not panels:
        panels = list(PANELS[:1])
    ncols = min(3, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig = Figure(figsize=(5 * ncols, 3.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (col, name) in zip(axes.flat, panels):
        for run, rows in histories.items():
            xs, ys = _series(rows, col)
            if xs:
                ax.plot(xs, ys, marker='o' if len(xs) < 30 else None,
                        markersize=3, label=run or None)
        ax.set_title(name)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
        if col == 'lr':
            ax.set_yscale('log')
        if len(histories) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    if title:
        fig.suptitle(title)
    # Fixed margins instead of tight_layout(): the panels and labels are
    # always the same, and tight_layout's text measuring was 60 % of the
    # drawing time, paid every epoch.
    height = 3.6 * nrows
    fig.subplots_adjust(left=0.055 * 3 / ncols, right=0.985,
                        bottom=0.45 / height, top=1 - (0.75 if title else 0.35)
                        / height, wspace=0.25, hspace=0.45)
    atomic_save_figure(fig, out_file, dpi=100)
    return out_file
