"""Check a folder of rock photos and write a train/test split of it.

``python tools/dataset/prepare_dataset.py photos/ data/rocks --test-ratio 0.2``

``photos/`` holds one sub-folder of images per class. Every image is decoded
once; corrupt, truncated and non-image files and extra copies of duplicates
are left out and reported, then ``train.txt``, ``test.txt``,
``annotations.txt`` and ``classes.txt`` are written in ``data/rocks`` (see
:func:`_prepare.prepare_dataset`). Existing ones that
change are kept as ``<name>.<time>.bak``. ``--strict`` stops on any problem
before writing anything (exit code 2).
"""
import argparse
import filecmp
import os
import os.path as osp
import shutil
import sys
import time

# Run as ``python tools/dataset/x.py``: tools/ holds _common.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import add_check_args, add_folder_args, run

SPLIT_FILES = ('train.txt', 'test.txt', 'annotations.txt', 'classes.txt')


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Check a folder-per-class image dataset and write a '
        'stratified train/test split in the original annotation format.')
    add_folder_args(parser, 'output folder (created if needed)')
    parser.add_argument('--test-ratio', type=float, default=0.2,
                        help='fraction of each class in test.txt '
                        '(default: 0.2)')
    parser.add_argument('--seed', type=int, default=0,
                        help='split seed (default: 0)')
    parser.add_argument('--fold', type=int, default=0,
                        help='which of the int(1/ratio) folds is the test '
                        'part (default: 0)')
    parser.add_argument('--mode', choices=('annotate', 'copy', 'symlink'),
                        default='annotate',
                        help='annotate: list the source images in place; '
                        'copy/symlink: put them under OUT/train/<class> and '
                        'OUT/test/<class> (default: annotate)')
    parser.add_argument('--overwrite', action='store_true',
                        help='copy/symlink: replace OUT/train and OUT/test '
                        'if they already hold files')
    add_check_args(
        parser, strict_help='fail on any problem, before writing anything')
    return parser.parse_args(argv)


def backup_split_files(out: str) -> dict:
    """Copy the split files already in ``out`` to ``<name>.<time>.bak``.

    Returns:
        dict: ``{file: backup}``.
    """
    stamp = time.strftime('%Y%m%d_%H%M%S')
    backups = {}
    for name in SPLIT_FILES:
        path = osp.join(out, name)
        if osp.isfile(path):
            backup, n = f'{path}.{stamp}.bak', 1
            while osp.exists(backup):  # a rerun within the same second
                n += 1
                backup = f'{path}.{stamp}_{n}.bak'
            shutil.copy2(path, backup)
            backups[path] = backup
    return backups


def drop_unneeded_backups(backups: dict) -> dict:
    """Remove the backups of files left unchanged; return those kept."""
    kept = {}
    for path, backup in backups.items():
        if osp.isfile(path) and filecmp.cmp(path, backup, shallow=False):
            os.unlink(backup)
        else:
            kept[path] = backup
    return kept


def main(argv=None):
    args = parse_args(argv)
    from rock_plugin.datasets.annotations import DataError
    from _prepare import prepare_dataset
    # Hand-edited or earlier split files must survive a rerun.
    backups = backup_split_files(args.out) if osp.isdir(args.out) else {}
    try:
        report, written = prepare_dataset(
            args.src, args.out, test_ratio=args.test_ratio, seed=args.seed,
            mode=args.mode, strict=args.strict, min_size=args.min_size,
            min_per_class=args.min_per_class, fold=args.fold,
            overwrite=args.overwrite)
    except DataError as exc:
        drop_unneeded_backups(backups)
        report = getattr(exc, 'report', None)
        if report is None or args.debug:
            raise
        print(report.format_table())
        print(report.format_problems())
        raise DataError(f'--strict: {len(report.problems)} problem(s) found; '
                        f'nothing was written in {args.out}') from None
    print(report.format_table(title=f'Images per class ({args.mode}, test '
                              f'ratio {args.test_ratio}, seed {args.seed})'))
    print(report.format_problems())
    if report.excluded:
        print(f'Left out of the split: {len(report.excluded)} file(s) '
              '(unusable, duplicate copies, label conflicts).')
    texts = [p for p in written if p.endswith('.txt')]
    images = len(written) - len(texts)
    print('Wrote:')
    for path in texts:
        print(f'  {path}')
    for path, backup in drop_unneeded_backups(backups).items():
        print(f'  (the previous {osp.basename(path)} is kept as {backup})')
    if images:
        verb = 'copied' if args.mode == 'copy' else 'linked'
        train, test = (osp.join(args.out, part) for part in ('train', 'test'))
        print(f'  {images} images {verb} under {train} and {test}')
    print(f"Use: RockDataset(data_root={args.out!r}, ann_file='train.txt', "
          "classes='annotations.txt')")


if __name__ == '__main__':
    run(main)
