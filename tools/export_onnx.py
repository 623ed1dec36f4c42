"""Export a trained rock classifier to ONNX and check it against PyTorch.

``python tools/export_onnx.py CONFIG CHECKPOINT --out rock.onnx
--check-images data/rocks``: one self-contained ``.onnx`` file (dynamic
batch, softmax scores, class names and input format in its metadata); exits
non-zero when ONNX Runtime and PyTorch differ by more than 1e-4.
:func:`parse_args` -> :func:`rock_plugin.apis.onnx_export.export_onnx`;
``--help`` lists the flags.
"""
import argparse
from typing import Any, Dict

from _common import (add_common_args, add_model_args, check_files,
                     check_output_not_input, run, setup_env)


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of ``tools/export_onnx.py``."""
    from rock_plugin.apis.onnx_export import DEFAULT_TOLERANCE
    parser = argparse.ArgumentParser(
        description='Export a trained rock classifier to ONNX (one file, '
        'dynamic batch, softmax scores, class names in the metadata) and '
        'check ONNX Runtime against PyTorch.')
    add_model_args(parser)
    parser.add_argument('--out', default='model.onnx',
                        help='output .onnx file (default: model.onnx); not '
                        'the config, the checkpoint or a --check-images '
                        'input')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: the test '
                        "pipeline's crop)")
    parser.add_argument('--opset', type=int, default=None,
                        help='ONNX opset (default 18; 17 with '
                        '--exporter torchscript)')
    parser.add_argument('--exporter', choices=['dynamo', 'torchscript'],
                        default='dynamo',
                        help='torch.onnx exporter (default dynamo)')
    parser.add_argument('--check-images', nargs='+', metavar='DIR_OR_FILE',
                        help='images or folders for the parity check '
                        '(default: 3 generated images)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help='largest allowed |ONNX - PyTorch| score '
                        'difference (default 1e-4)')
    add_common_args(parser, device='cpu', distributed=False,
                    cfg_options=False)
    args = parser.parse_args(argv)
    if not args.out.endswith('.onnx'):
        raise ValueError(f'{args.out}: the output file must end in .onnx')
    check_files((args.config, 'config'), (args.checkpoint, 'checkpoint'))
    # A checkpoint may well be named *.onnx; the export must not replace it.
    check_output_not_input(args.out, [args.config, args.checkpoint,
                                      *(args.check_images or [])], '--out')
    return args


def main(argv=None) -> Dict[str, Any]:
    """Export, check, print the parity figure."""
    args = parse_args(argv)
    setup_env(args)
    from rock_plugin.apis.inferencer import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME
    from rock_plugin.apis.onnx_export import export_onnx
    from rock_plugin.utils.progress import ProgressBar
    # One opaque call: the bar shows the time it has taken (terminal only).
    with ProgressBar('exporting and checking against PyTorch'):
        report = export_onnx(args.config, args.checkpoint, args.out,
                             args.shape, args.opset, args.device,
                             args.check_images, args.tolerance,
                             args.exporter)
    h, w = report['shape']
    print(f'exported {report["path"]} ({report["size_bytes"] / 2**20:.1f} '
          f'MiB, one file, {report["exporter"]} exporter): input '
          f'{ONNX_INPUT_NAME} N x 3 x {h} x {w} RGB float 0-255, output '
          f'{ONNX_OUTPUT_NAME} N x {len(report["classes"])} softmax scores')
    print(f'classes: {", ".join(report["classes"])}')
    print(f'parity ONNX Runtime vs PyTorch: max abs diff of scores '
          f'{report["max_abs_diff"]:.3g} on {report["images"]} images '
          f'(tolerance {report["tolerance"]:g}), batch sizes '
          f'{", ".join(map(str, report["batch_sizes"]))} OK, top-1 agreement '
          f'{report["top1_agree"] * 100:.0f}%')
    return report


if __name__ == '__main__':
    run(main)
