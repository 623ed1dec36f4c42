"""A local web page for a trained rock classifier (Gradio), CPU is enough.

    python tools/web_demo.py configs/rock_quickstart.py \\
        work_dirs/rock_quickstart/epoch_30.pth
    # then open http://127.0.0.1:7860
    python tools/web_demo.py CONFIG CKPT --onnx model.onnx --port 8080

Drop in or pick an image (the bundled thin sections are offered as
examples): the answer (the top-1 class, or "unknown" when the image is
unlike every trained class) with its novelty score and threshold, the
top-5 classes as bars, the three most similar training images (read from
where training found them; those not on this machine are named) and the
Grad-CAM overlay of the top-1 class. With ``--onnx`` the scores come from
ONNX Runtime; the overlay still needs the PyTorch checkpoint. A file that
is not a readable image is named on the page in one line. Uploads live in
a temporary folder of the demo's own, removed when it stops (Ctrl+C or
SIGTERM). Follows mmpretrain's ``projects/gradio_demo``.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from _common import (REPO, add_common_args, add_model_args, check_files,
                     run, setup_env)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line flags of the tool."""
    from rock_plugin.visualization.cam import CAM_METHODS
    parser = argparse.ArgumentParser(
        description='Serve a web page that classifies rock thin sections '
        'and shows a Grad-CAM overlay.')
    add_model_args(parser)
    parser.add_argument('--onnx', help='score with this exported .onnx '
                        'model (ONNX Runtime) instead of PyTorch')
    parser.add_argument('--port', type=int, default=7860,
                        help='port (default 7860)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default 127.0.0.1, '
                        'this machine only; 0.0.0.0 for the network)')
    parser.add_argument('--method', default='gradcam', choices=CAM_METHODS,
                        help='CAM method (default gradcam)')
    parser.add_argument('--no-cam', action='store_true',
                        help='scores only, no overlay')
    parser.add_argument('--unknown-threshold', type=float, default=None,
                        metavar='X', help='answer "unknown" above this '
                        'novelty (default: the threshold fitted in '
                        'training)')
    parser.add_argument('--examples', default=osp.join(
        REPO, 'demo', 'rock_thin_sections'), help='a folder per class whose '
        'first images are offered as examples (default: the bundled demo '
        'data)')
    add_common_args(parser, device='cpu', distributed=False,
                    cfg_options=False)
    args = parser.parse_args(argv)
    check_files((args.config, 'config'), (args.checkpoint, 'checkpoint'),
                (args.onnx, 'ONNX model'))
    return args


def main(argv: Optional[List[str]] = None) -> None:
    """Build the models, then serve until interrupted."""
    from _web_demo import demo_temp_dir
    args = parse_args(argv)
    # Gradio phones home for analytics and version checks unless told not to.
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    # Uploads, overlays and Gradio's own folders go to a folder of this run,
    # removed on exit; Gradio reads GRADIO_TEMP_DIR as it is imported.
    with demo_temp_dir():
        serve_args(args)


def serve_args(args: argparse.Namespace) -> None:
    """Load the model(s) and serve the page as ``args`` say."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError('the web demo needs Gradio: pip install '
                         '"rock_plugin[demo]" (or pip install gradio)'
                         ) from None
    from rock_plugin.apis.inferencer import RockInferencer
    from rock_plugin.visualization.cam import RockCAM
    from _web_demo import build_demo, bundled_examples, serve

    setup_env(args)
    torch_inferencer = RockInferencer(args.config, args.checkpoint,
                                      args.device)
    inferencer = torch_inferencer if not args.onnx else RockInferencer(
        args.config, args.checkpoint, args.device,
        backend='onnxruntime', onnx_model=args.onnx)
    if args.unknown_threshold is not None:
        if inferencer.open_set is None:
            raise ValueError(f'{args.onnx or args.checkpoint}: '
                             '--unknown-threshold needs a model with a '
                             'feature bank (trained with the open-set head)')
        inferencer.unknown_threshold = args.unknown_threshold
    cam = None if args.no_cam else RockCAM(torch_inferencer, args.method)
    examples = bundled_examples(args.examples)
    demo = build_demo(inferencer, cam, examples)
    print(f'serving on http://{args.host}:{args.port} (scores: '
          f'{"ONNX Runtime" if args.onnx else "PyTorch"}, {len(examples)} '
          'examples); Ctrl+C stops', flush=True)
    serve(demo, server_name=args.host, server_port=args.port, share=False,
          ssr_mode=False, quiet=True, footer_links=[],
          allowed_paths=[osp.abspath(args.examples)] if examples else None)

if __name__ == '__main__':
    run(main)
