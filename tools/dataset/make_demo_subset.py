"""Make a small downscaled copy of a folder-per-class image dataset.

``python tools/dataset/make_demo_subset.py ../shared/data/rock_thin_sections
demo/rock_thin_sections --size 256 --quality 85`` (how the bundled demo was
made).

Keeps every usable, distinct image, or ``--per-class`` of them per class (the
same ones for the same ``--seed``), resizes their shorter side to ``--size``
(aspect ratio kept, never enlarged), re-encodes them as JPEG ``--quality``
and writes them in the same folder-per-class layout; fails, writing nothing,
when the total would exceed ``--max-mb`` MiB. See
:func:`_demo_subset.make_subset`.
"""
import argparse
import os.path as osp
import sys

# Run as ``python tools/dataset/x.py``: tools/ holds _common.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import add_folder_args, run


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Write a small downscaled JPEG subset of a '
        'folder-per-class dataset (e.g. a bundled demo).')
    add_folder_args(parser, 'output folder')
    parser.add_argument('--per-class', type=int, default=None,
                        help='images per class (default: all)')
    parser.add_argument('--size', type=int, default=256,
                        help='shorter side in pixels (default: 256)')
    parser.add_argument('--quality', type=int, default=85,
                        help='JPEG quality 1-95 (default: 85)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the choice of images (default: 0)')
    parser.add_argument('--max-mb', type=float, default=7.5,
                        help='fail if the images would take more MiB '
                        '(default: 7.5)')
    parser.add_argument('--overwrite', action='store_true',
                        help='allow a non-empty OUT; its old images are '
                        'replaced')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback on errors')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from _demo_subset import MIB, make_subset
    info = make_subset(args.src, args.out, per_class=args.per_class,
                       size=args.size, quality=args.quality, seed=args.seed,
                       max_mb=args.max_mb, overwrite=args.overwrite)
    report = info['report']
    if report.excluded:
        print(f'Not picked: {len(report.excluded)} unusable or duplicate '
              'source image(s):')
        print(report.format_problems())
    sizes = sorted(info['sizes'])
    shown = ', '.join(f'{w}x{h}' for w, h in sizes[:4]) + (
        ', ...' if len(sizes) > 4 else '')
    for name, count in info['per_class'].items():
        print(f'  {name}: {count}')
    print(f"Wrote {len(info['files'])} images in "
          f"{len(info['per_class'])} classes to {args.out}: "
          f"{info['bytes'] / MIB:.2f} MiB ({info['bytes']} bytes), "
          f'sizes {shown}, JPEG quality {args.quality}, seed {args.seed}')


if __name__ == '__main__':
    run(main)
