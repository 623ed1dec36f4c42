"""Redraw training curves from ``history.csv`` files; compare runs on one
figure.

    python tools/analysis/plot_history.py work_dirs/rock_b4
    python tools/analysis/plot_history.py work_dirs/run_a \\
        work_dirs/run_b/history.csv --names lr0.1 lr0.01 --out compare.png \\
        --title 'Learning rate'

Each argument is a work dir (its ``history.csv`` is read) or a CSV file
written by ``HistoryHook``. The panels are those of ``curves.png``: train
loss, top-1 accuracy, macro precision, recall, F1 and learning rate.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# Run as ``python tools/analysis/x.py``: tools/ holds _common.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import run


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of the tool."""
    parser = argparse.ArgumentParser(
        description='Draw loss / accuracy / precision / recall / F1 / lr '
        'curves of one or more training runs on one figure.')
    parser.add_argument('histories', nargs='+', metavar='WORK_DIR_OR_CSV',
                        help='work dirs or history.csv files')
    parser.add_argument('--out', help='image to write (default: curves.png '
                        'beside the history for one run, compare_curves.png '
                        'in the current folder for several)')
    parser.add_argument('--names', nargs='+', help='legend name of each run '
                        '(default: the work dir names)')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--debug', action='store_true',
                        help='show full tracebacks')
    return parser


def _csv_path(path: str) -> str:
    return osp.join(path, 'history.csv') if osp.isdir(path) else path


def _run_name(path: str) -> str:
    csv_file = osp.abspath(_csv_path(path))
    return osp.basename(osp.dirname(csv_file)) or csv_file


def plot_history(argv: Optional[List[str]] = None) -> str:
    """Read one or more histories and draw them on one figure.

    Args:
        argv (list[str], optional): Flags of :func:`build_parser` (default
            ``sys.argv[1:]``).

    Returns:
        str: The image written.

    Example:
        >>> plot_history(['work_dirs/a', 'work_dirs/b', '--out', 'ab.png'])
        'ab.png'
    """
    args = build_parser().parse_args(argv)
    from rock_plugin.visualization import plot_curves, read_history
    if args.names and len(args.names) != len(args.histories):
        raise ValueError(f'--names gives {len(args.names)} names for '
                         f'{len(args.histories)} histories')
    names = list(args.names or [_run_name(p) for p in args.histories])
    for i, name in enumerate(names):  # equal dir names must not merge runs
        if names.count(name) > 1:
            names[i] = f'{name} ({names[:i].count(name) + 1})'
    runs = {}
    for name, path in zip(names, args.histories):
        rows = read_history(path)
        if not rows:
            raise ValueError(f'{_csv_path(path)}: the history has no rows '
                             '(no epoch finished yet)')
        if 'epoch' not in rows[0]:
            raise ValueError(f'{_csv_path(path)}: not a history.csv written '
                             'by HistoryHook (no epoch column)')
        runs[name] = rows
    out = args.out
    if out is None:
        out = osp.join(osp.dirname(osp.abspath(_csv_path(args.histories[0]))),
                       'curves.png') if len(runs) == 1 else \
            'compare_curves.png'
    plot_curves(runs if len(runs) > 1 else next(iter(runs.values())), out,
                title=args.title or (names[0] if len(runs) == 1 else None))
    print(f'{len(runs)} run(s), '
          f'{sum(len(r) for r in runs.values())} epochs: wrote {out}')
    return out


if __name__ == '__main__':
    run(plot_history)
