"""Check a rock dataset before training.

``python tools/dataset/check_dataset.py data/rocks --ann-file train.txt
test.txt`` checks the images listed in annotation files (classes from
``--classes annotations.txt``); without ``--ann-file`` it checks a
folder-per-class tree ``DATA_ROOT/<class>/*.jpg``. Every image is decoded
once: missing, corrupt, truncated and non-image files, duplicates (within and
across classes and files), tiny images and classes with too few images are
reported with a per-class table. Exit code 0, or 2 with ``--strict`` when
something was found.
"""
import argparse
import os.path as osp
import sys

# Run as ``python tools/dataset/x.py``: tools/ holds _common.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import add_check_args, run


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Check the images of a dataset: annotation files, or a '
        'folder per class when no --ann-file is given.')
    parser.add_argument('data_root', help='dataset root folder')
    parser.add_argument('--ann-file', nargs='+', action='extend', default=[],
                        help='annotation file(s), relative to DATA_ROOT or '
                        'the working folder; checked together so that a '
                        'train/test overlap shows')
    parser.add_argument('--classes', default='annotations.txt',
                        help='classes file for --ann-file (default: '
                        'annotations.txt)')
    parser.add_argument('--data-prefix', default='',
                        help='sub-folder of DATA_ROOT the image paths are '
                        'relative to (default: none)')
    add_check_args(
        parser, strict_help='exit with an error when any problem is found')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from rock_plugin.datasets.annotations import DataError
    from _checks import check_class_tree
    from _prepare import check_annotation_files
    if args.ann_file:
        report = check_annotation_files(
            args.data_root, args.ann_file, args.classes,
            data_prefix=args.data_prefix, min_size=args.min_size,
            min_per_class=args.min_per_class)
        title = 'Images per class (' + ', '.join(args.ann_file) + ')'
    else:
        root = osp.join(args.data_root, args.data_prefix) \
            if args.data_prefix else args.data_root
        found = [f for f in ('train.txt', 'val.txt', 'test.txt')
                 if osp.isfile(osp.join(root, f))]
        try:
            report = check_class_tree(root, min_size=args.min_size,
                                      min_per_class=args.min_per_class)
        except DataError as exc:
            if not found:
                raise
            # Most likely a prepared split: say how to check it instead.
            raise DataError(f'{exc}; to check the annotation files there, '
                            f'pass --ann-file {" ".join(found)}') from None
        title = 'Images per class (folder per class)'
    print(report.format_table(title=title))
    print(report.format_problems())
    if args.strict and not report.ok:
        raise DataError(f'--strict: {len(report.problems)} problem(s) found',
                        args.data_root)


if __name__ == '__main__':
    run(main)
