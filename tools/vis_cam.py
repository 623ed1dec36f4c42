"""Class-activation maps (Grad-CAM and friends) of a trained rock classifier.

    python tools/vis_cam.py configs/rock_quickstart.py \\
        work_dirs/rock_quickstart/epoch_30.pth demo/rock_thin_sections/Chert \\
        --method gradcam --out-dir cams
    # why would it call this Chert? which grains speak for Bauxite?
    python tools/vis_cam.py CONFIG CKPT rock.jpg --target-class Bauxite

Like mmpretrain's ``tools/visualization/vis_cam.py``, with the ``grad-cam``
package doing the maths, but it works with a frozen backbone: gradients
reach its activations while its weights stay frozen, through the fused fast
path where the target layer exists there (else the plain backbone; the tool
says which). Each image gives ``<out-dir>/<name>_<method>_<class>.png`` (the
whole name, extension too: ``a.jpg`` and ``a.png`` stay apart), the model's
input crop with the heat map over it; ``--out-dir`` may not lie inside the
input folder.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from _common import (add_common_args, add_model_args, check_files,
                     check_output_not_input, flag_hint, run, setup_env)

# The package's words for what this tool's flags set (_common.flag_hint).
FLAG_HINTS = {'target_class=': '--target-class ',
              'target_layers': '--target-layer'}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line flags of the tool."""
    from rock_plugin.visualization.cam import CAM_METHODS
    parser = argparse.ArgumentParser(
        description='Save class-activation-map overlays of an image or a '
        'folder of images (recursive).')
    add_model_args(parser)
    parser.add_argument('input', help='an image or a folder of images')
    parser.add_argument('--method', default='gradcam', choices=CAM_METHODS,
                        help='CAM method (default gradcam; eigencam needs no '
                        'gradient and ignores --target-class)')
    parser.add_argument('--target-class', help='class name (or index) to '
                        'explain (default: the predicted class)')
    parser.add_argument('--target-layer', '--target-layers', nargs='+',
                        dest='target_layers', metavar='LAYER',
                        help='module name(s), e.g. backbone.layers.5 '
                        '(default: the module giving the backbone\'s last '
                        'feature map); several are averaged')
    parser.add_argument('--out-dir', default='cam_out',
                        help='where overlays go (default cam_out)')
    parser.add_argument('--eigen-smooth', action='store_true',
                        help='smooth the CAM with its first principal '
                        'component')
    parser.add_argument('--plain', action='store_true',
                        help='run the plain backbone, not the fused fast '
                        'path')
    add_common_args(parser, device='cpu', distributed=False,
                    cfg_options=False)
    args = parser.parse_args(argv)
    check_files((args.config, 'config'), (args.checkpoint, 'checkpoint'))
    # Overlays in the data tree would be read as images of its classes.
    check_output_not_input(args.out_dir, [args.input, args.config,
                                          args.checkpoint], '--out-dir')
    return args


def _out_name(out_dir: str, rel: str, method: str, cls: str) -> str:
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in cls)
    # rel keeps its extension: a.jpg and a.png stay apart.
    return osp.join(out_dir, f'{rel}_{method}_{safe}.png')


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Run the tool; return the overlay paths written."""
    args = parse_args(argv)
    with flag_hint(FLAG_HINTS):
        return _vis_cam(args)


def _vis_cam(args) -> List[str]:
    from rock_plugin.apis.inferencer import (IMAGE_EXTENSIONS,
                                             RockInferencer, list_images)
    from rock_plugin.utils.text import printable
    from rock_plugin.visualization.annotate import save_image
    from rock_plugin.visualization.cam import RockCAM

    setup_env(args)
    if osp.isdir(args.input):
        images = list_images(args.input)
        if not images:
            raise FileNotFoundError(
                f'{args.input}: no images in this folder (looked for '
                f'{", ".join(IMAGE_EXTENSIONS)})')
        names = [osp.relpath(p, args.input) for p in images]
    elif osp.isfile(args.input):
        images, names = [args.input], [osp.basename(args.input)]
    else:
        raise FileNotFoundError(f'{args.input}: no such image or folder')

    inferencer = RockInferencer(args.config, args.checkpoint, args.device)
    target = args.target_class
    if target is not None and target not in inferencer.classes and \
            target.isdigit():
        target = int(target)
    cam = RockCAM(inferencer, args.method, args.target_layers,
                  fast=not args.plain)
    cam.class_index(target)  # a wrong class name fails before any work
    written, failed = [], 0
    for path, rel in zip(images, names):
        try:
            result = cam(path, target, eigen_smooth=args.eigen_smooth)
        except ValueError as exc:  # an unreadable image (ImageReadError)
            if len(images) == 1:
                raise
            failed += 1
            print(f'skipped {printable(path)}: {printable(exc)}',
                  file=sys.stderr, flush=True)
            continue
        if not written:
            how = 'fused fast path' if cam.path == 'fused' else \
                f'plain backbone: {cam.path[len("plain ("):-1]}'
            print(f'{args.method} at {", ".join(cam.layer_names)} '
                  f'({how})', flush=True)
        out = _out_name(args.out_dir, rel, args.method,
                        result['target_class'])
        save_image(out, result['overlay'])
        written.append(out)
        score = result['scores'].get(result['target_class'], float('nan'))
        print(f'{printable(rel)}: {printable(result["target_class"])} '
              f'(p={score:.3f}) -> {printable(out)}', flush=True)
    print(f'{len(written)} overlays in {args.out_dir}, {failed} failed')
    if not written:
        raise ValueError(f'{args.input}: no image could be read')
    return written


if __name__ == '__main__':
    run(main)
