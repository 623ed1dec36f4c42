"""Training curves from ``history.csv`` files (one or several runs)."""
import csv
import io
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from rock_plugin.utils.atomic_io import atomic_save_figure
from rock_plugin.utils.text import from_csv_cell, printable

# (title, ((column, curve label), ...)) a panel, drawn when some run has one
# of its columns; train and validation share an axis (overfitting shows).
PANELS = (
    ('Loss', (('train_loss', 'train'), ('val_loss', 'val'))),
    ('Top-1 accuracy (%)', (('train_accuracy/top1', 'train'),
                            ('accuracy/top1', 'val'))),
    ('Precision, macro (%)', (('train_precision', 'train'),
                              ('precision', 'val'))),
    ('Recall, macro (%)', (('train_recall', 'train'), ('recall', 'val'))),
    ('F1-score, macro (%)', (('train_f1-score', 'train'),
                             ('f1-score', 'val'))),
    ('Learning rate', (('lr', ''), )),
)
STYLE = {'train': '--', 'val': '-', '': '-'}


def read_history(path: str) -> List[Dict[str, str]]:
    """Read a ``history.csv`` written by :class:`HistoryHook`.

    Args:
        path (str): The CSV file, or a work dir holding ``history.csv``.

    Returns:
        list[dict]: One dict a row, values as strings ('' when missing).

    Raises:
        FileNotFoundError: No history there.
        ValueError: A damaged file (not text, a row longer than the header, a
            value that is not a number), naming the file and line.
    """
    if osp.isdir(path):
        path = osp.join(path, 'history.csv')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path}: no history file (train a model first)')
    try:
        with open(path, newline='', encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError:
        text = '\0'
    if '\0' in text:
        raise ValueError(f'{path}: the history is damaged, not CSV text')
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        where = f'{path}:{reader.line_num}: the history is damaged'
        if None in row:
            raise ValueError(f'{where}: more values than columns')
        # our CSV writer quotes formula-like cells (a class '=x'): undone
        row = {from_csv_cell(k): from_csv_cell(v or '')  # short row: ''
               for k, v in row.items()}
        for column, value in row.items():
            try:
                int(value) if column == 'epoch' else float(value or 0)
            except ValueError:
                raise ValueError(f'{where}: {printable(column)} is '
                                 f'{value!r}, not a number') from None
        rows.append(row)
    return rows


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
    """Draw loss, accuracy, precision, recall, F1 and LR against epoch,
    train (dashed) and validation (solid) on shared axes.

    Args:
        histories: Rows of one run, or ``{run name: rows}`` to compare runs.
        out_file (str): Image to write (atomically).
        title (str, optional): Figure title.

    Returns:
        str: ``out_file``.
    """
    # The object API: no pyplot state, so hooks can draw off the main thread.
    from matplotlib.figure import Figure
    from .fonts import plot_text
    if not isinstance(histories, dict):
        histories = {'': histories}
    # run names are folder names: drawn literally (mathtext, escapes)
    histories = {plot_text(k): v for k, v in histories.items()}
    panels = [(name, curves) for name, curves in PANELS
              if any(_series(rows, col)[0] for col, _ in curves
                     for rows in histories.values())] or list(PANELS[:1])
    ncols = min(3, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig = Figure(figsize=(5 * ncols, 3.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    from matplotlib.ticker import MaxNLocator
    for ax, (name, curves) in zip(axes.flat, panels):
        labelled = False
        for i, (run, rows) in enumerate(histories.items()):
            for col, part in curves:
                xs, ys = _series(rows, col)
                if not xs:
                    continue
                # one run: a colour for train, one for val; several: per run
                color = f'C{i % 10}' if len(histories) > 1 else \
                    ('C1' if part == 'val' else 'C0')
                label = ' '.join(t for t in (run, part) if t) or None
                labelled |= label is not None
                ax.plot(xs, ys, STYLE[part], color=color, label=label,
                        marker='o' if len(xs) < 30 else None, markersize=3)
        ax.set(title=name, xlabel='epoch')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if name == 'Learning rate':
            ax.set_yscale('log')
        if labelled:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    if title:
        fig.suptitle(plot_text(title))
    # Fixed margins: tight_layout's text measuring was 60 % of the drawing
    # time, paid every epoch, for a layout that never changes.
    height = 3.6 * nrows
    fig.subplots_adjust(left=0.055 * 3 / ncols, right=0.985,
                        bottom=0.45 / height, top=1 - (0.75 if title else 0.35)
                        / height, wspace=0.25, hspace=0.45)
    atomic_save_figure(fig, out_file, dpi=100)
    return out_file
