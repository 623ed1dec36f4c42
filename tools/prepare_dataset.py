"""Check a folder of rock photos and write a train/test split of it.

``python tools/prepare_dataset.py photos/ data/rocks --test-ratio 0.2``

``photos/`` holds one sub-folder of images per class. Every image is decoded
once; corrupt, truncated and non-image files and extra copies of duplicates
are left out and reported, then ``train.txt``, ``test.txt``,
``annotations.txt`` and ``classes.txt`` are written in ``data/rocks`` (see
:func:`rock_plugin.datasets.prepare.prepare_dataset`). ``--strict`` stops on
any problem before writing anything (exit code 2).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from rock_plugin.apis.cli import run_cli  # noqa: E402


def parse_args(argv):
    from rock_plugin.datasets.checks import add_check_arguments
    parser = argparse.ArgumentParser(
        description='Check a folder-per-class image dataset and write a '
        'stratified train/test split in the original annotation format.')
    parser.add_argument('src', help='folder with one sub-folder per class')
    parser.add_argument('out', help='output folder (created if needed)')
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
    add_check_arguments(
        parser, strict_help='fail on any problem, before writing anything')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from rock_plugin.datasets.annotations import DataError
    from rock_plugin.datasets.prepare import prepare_dataset
    try:
        report, written = prepare_dataset(
            args.src, args.out, test_ratio=args.test_ratio, seed=args.seed,
            mode=args.mode, strict=args.strict, min_size=args.min_size,
            min_per_class=args.min_per_class, fold=args.fold,
            overwrite=args.overwrite)
    except DataError as exc:
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
    if images:
        verb = 'copied' if args.mode == 'copy' else 'linked'
        train, test = (osp.join(args.out, part) for part in ('train', 'test'))
        print(f'  {images} images {verb} under {train} and {test}')
    print(f"Use: RockDataset(data_root={args.out!r}, ann_file='train.txt', "
          "classes='annotations.txt')")


if __name__ == '__main__':
    sys.exit(run_cli(main))
