"""Predict rock classes: ``python tools/predict.py CONFIG CKPT INPUT``.

INPUT is an image, a folder (recursive) or a video (every ``--every-n``-th
frame); prints a table and writes ``--out preds.csv|.json``. ``--backend
onnxruntime --onnx model.onnx`` runs an export of ``tools/export_onnx.py``;
``python tools/predict.py --onnx model.onnx INPUT`` needs nothing else (the
test pipeline and class names are in its metadata). ``--show-dir DIR`` saves
each image annotated with its top-k classes (``--cam``: and its Grad-CAM
overlay beside it) as ``DIR/<path under INPUT>.jpg`` (``a.png`` ->
``a.png.jpg``: ``a.jpg`` and ``a.png`` stay apart); a video gives an
annotated video there (or beside ``--out``). DIR may not be, or lie inside,
INPUT: the outputs would overwrite or mix with the inputs. ``--group-by
[REGEX]`` pools the images of each slide of a folder (a table, and
``<--out name>_per_slide.csv``). A model with a feature bank also gives
each image its novelty score and answer (its class, or "unknown" above
the threshold, ``--unknown-threshold X`` to change it), in the table, the
``--out`` columns and, with the three most similar training images beside
the image, in ``--show-dir``.
:func:`parse_args` -> :class:`rock_plugin.apis.inferencer.RockInferencer`;
``--help`` lists the flags.
"""
import argparse
import functools
import os.path as osp
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

from _common import (add_common_args, add_model_args, check_files,
                     check_output_not_input, flag_hint, run, setup_env)


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of ``tools/predict.py``."""
    parser = argparse.ArgumentParser(
        description='Predict rock classes of an image, a folder of images '
        '(recursive) or a video (every N-th frame).')
    # CONFIG and CKPT may be left out with --onnx (INPUT alone).
    add_model_args(parser, optional=True)
    parser.add_argument('input', help='an image, a folder of images or a '
                        'video file')
    parser.add_argument('--topk', type=int, default=5,
                        help='classes listed per image (default 5)')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='images per forward pass (default 8)')
    parser.add_argument('--out', help='write all predictions to a .csv or '
                        '.json file')
    parser.add_argument('--every-n', type=int, default=10,
                        help='for a video: predict every N-th frame '
                        '(default 10)')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'],
                        help='run the checkpoint with PyTorch (default) or '
                        'an exported model (--onnx) with ONNX Runtime '
                        '(default with --onnx)')
    parser.add_argument('--onnx', help='the exported .onnx file (tools/'
                        'export_onnx.py); alone it needs no config or '
                        'checkpoint')
    parser.add_argument('--show-dir', help='save each image annotated with '
                        'its top-k classes (and answer, novelty and most '
                        'similar training images when the model has a '
                        'feature bank) here, as <its path under INPUT>'
                        '.jpg (a video: an annotated video); not inside '
                        'INPUT')
    parser.add_argument('--cam', action='store_true',
                        help='with --show-dir: add the Grad-CAM overlay of '
                        'the top-1 class beside each image (needs the '
                        'checkpoint)')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: average the scores of '
                        "the config's tta_pipeline views (flips and 90-degree "
                        'rotations)')
    parser.add_argument('--unknown-threshold', type=float, metavar='X',
                        help='call an image "unknown" when its novelty '
                        "score is above X (default: the model's own "
                        'threshold, fitted in training to keep 95%% of the '
                        'validation images); needs a model with a feature '
                        'bank')
    parser.add_argument(
        '--group-by', nargs='?', const='', metavar='REGEX',
        help='also pool the images of each slide (sample) of a folder: a '
        'per-slide table, and <--out name>_per_slide.csv. REGEX is searched '
        'in the file name, group 1 the slide, or folder / folder:N, as in '
        'cross_validate.py; alone: <name><number>_<tile> names '
        '(Chert23_11.jpg -> Chert23)')
    parser.add_argument('--pool', choices=['mean', 'logmean'],
                        help='with --group-by: pool the mean of the '
                        'probabilities or of the log-probabilities '
                        '(default logmean)')
    add_common_args(parser, device='cpu', distributed=False,
                    cfg_options=False)
    args = parser.parse_args(argv)
    if args.out and osp.splitext(args.out)[1].lower() not in ('.csv',
                                                              '.json'):
        raise ValueError(f'{args.out}: --out must end in .csv or .json')
    if args.topk < 1 or args.batch_size < 1 or args.every_n < 1:
        raise ValueError('--topk, --batch-size and --every-n must be at '
                         'least 1')
    if args.backend is None:
        args.backend = 'onnxruntime' if args.onnx else 'pytorch'
    if args.checkpoint is None and not args.onnx:
        raise ValueError('give CONFIG CHECKPOINT INPUT, or --onnx model.onnx '
                         'INPUT')
    if args.cam and (args.checkpoint is None or not args.show_dir):
        raise ValueError('--cam draws into --show-dir and needs the '
                         'PyTorch model: give --show-dir, CONFIG and '
                         'CHECKPOINT')
    if args.backend == 'onnxruntime' and not args.onnx:
        raise ValueError('--backend onnxruntime needs --onnx model.onnx '
                         '(made by tools/export_onnx.py)')
    check_files((args.config, 'config'), (args.checkpoint, 'checkpoint'),
                (args.onnx, 'ONNX model'))
    if not osp.exists(args.input):
        raise FileNotFoundError(
            f'{args.input}: no such image, folder or video')
    check_output_not_input(args.show_dir, [args.input, args.config,
                                           args.checkpoint, args.onnx],
                           '--show-dir')
    if args.tta and args.backend == 'onnxruntime' and args.config:
        raise ValueError('--tta runs the PyTorch model; it does not combine '
                         'with --backend onnxruntime')
    if args.tta and args.unknown_threshold is not None:
        raise ValueError('--unknown-threshold does not combine with --tta: '
                         'the averaged views give no novelty score')
    if args.pool and args.group_by is None:
        raise ValueError('--pool pools the images of a slide: give '
                         '--group-by [REGEX] too')
    return args


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else '...' + name[-(width - 3):]


def _relative(path: str, start: str) -> str:
    from rock_plugin.utils.text import printable
    return printable(osp.relpath(path, start))


def open_input(args: argparse.Namespace, errors: List[Tuple[str, str]]):
    """The inputs of ``args.input``: ``(items, width, kind, shown,
    on_error)`` for the table and the error list."""
    from rock_plugin.apis.inferencer import (IMAGE_EXTENSIONS,
                                             VIDEO_EXTENSIONS, list_images,
                                             video_frames)
    from rock_plugin.utils.text import printable
    source = args.input
    on_error = None
    shown: Callable[[str], str] = printable
    if osp.isdir(source):
        items = list_images(source)
        if not items:
            raise FileNotFoundError(
                f'{source}: no images in this folder (looked for '
                f'{", ".join(IMAGE_EXTENSIONS)})')
        # The table shows paths under the folder; --out keeps full paths.
        shown = functools.partial(_relative, start=source)
        width = max(len(shown(p)) for p in items)
        kind = f'{len(items)} images in {printable(source)}'

        def on_error(name, exc):
            message = str(exc)
            if message.startswith(name + ': '):
                message = message[len(name) + 2:]
            errors.append((name, message))
            print(f'skipped {printable(name)}: {printable(message)}',
                  file=sys.stderr, flush=True)
    elif source.lower().endswith(VIDEO_EXTENSIONS):
        count, items = video_frames(source, args.every_n)
        name = printable(source)
        width = len(name) + len(f'#frame={max(count, 1) - 1}')
        kind = (f'video {name}: {count or "unknown number of"} frames, '
                f'every {args.every_n}th' if args.every_n > 1 else
                f'video {name}: {count} frames, all')
    else:
        name = printable(source)
        items, width, kind = [source], len(name), f'image {name}'
    return items, width, kind, shown, on_error


class Views:
    """``--show-dir``: annotated images (``--cam``: with the Grad-CAM
    overlay beside); for a video, an annotated video in ``--show-dir`` or
    beside ``--out``."""

    def __init__(self, args, inferencer, video: bool):
        self.args, self.frames, self.video = args, {}, None
        self.inferencer = inferencer  # its novelty threshold in force
        self.cam = None
        if args.cam and video:
            raise ValueError('--cam draws on images, not on a video')
        if args.cam:
            from rock_plugin.apis.inferencer import RockInferencer
            from rock_plugin.visualization.cam import RockCAM
            torch_model = inferencer if inferencer.model is not None else \
                RockInferencer(args.config, args.checkpoint, args.device)
            self.cam = RockCAM(torch_model)
        target = args.show_dir or (args.out and osp.dirname(args.out))
        if video and target is not None:
            import cv2

            from rock_plugin.visualization.video import AnnotatedVideoWriter
            stem = osp.splitext(osp.basename(
                args.input if args.show_dir else args.out))[0]
            capture = cv2.VideoCapture(args.input)
            fps = capture.get(cv2.CAP_PROP_FPS) / args.every_n
            capture.release()
            path = osp.join(target, f'{stem}_annotated.mp4')
            check_output_not_input(path, [args.input], '--show-dir'
                                   if args.show_dir else '--out')
            self.video = AnnotatedVideoWriter(path, fps)

    def remember(self, items):
        """Pass the inputs on, keeping video frames until shown."""
        for item in items:
            if self.video is not None and isinstance(item, tuple):
                self.frames[item[0]] = item[1]
            yield item

    def show(self, result: Dict[str, Any]) -> None:
        if self.video is not None:
            self.video.write(self.frames.pop(result['file']), result['topk'])
            return
        if not self.args.show_dir:
            return
        import cv2

        from rock_plugin.utils.text import printable
        from rock_plugin.visualization.annotate import (annotate_result,
                                                        save_image)
        bgr = cv2.imread(result['file'], cv2.IMREAD_COLOR)
        if bgr is None:  # read by the model's loader but not by OpenCV
            print(f'--show-dir: cannot draw {printable(result["file"])}',
                  file=sys.stderr)
            return
        overlay = None
        if self.cam is not None:
            overlay = self.cam(result['file'],
                               target_class=result['pred_class'])['overlay']
        source = self.args.input
        rel = osp.relpath(result['file'], source) if osp.isdir(source) \
            else osp.basename(result['file'])
        # The whole name, extension too: a.jpg and a.png stay apart.
        path = osp.join(self.args.show_dir, rel + '.jpg')
        # A --show-dir above INPUT can still lead into it (INPUT/x/x/...).
        check_output_not_input(path, [source], '--show-dir')
        # The evidence: answer, novelty and the nearest training images.
        save_image(path, annotate_result(
            bgr[..., ::-1], result, self.inferencer.novelty_threshold,
            overlay))

    def close(self) -> None:
        from rock_plugin.utils.text import printable
        if self.video is not None and self.video.frames:
            self.video.close()
            print(f'wrote {printable(self.video.path)} '
                  f'({self.video.frames} frames)')
        elif self.args.show_dir and not self.video:
            print(f'annotated images in {printable(self.args.show_dir)}')


def slide_keys(args: argparse.Namespace, paths: List[str]) -> List[str]:
    """``--group-by``: the slide of every path, as ``cross_validate.py``
    reads it (one error line names the file names it misses)."""
    from rock_plugin.datasets.kfold import group_keys
    from rock_plugin.evaluation.slide_results import DEFAULT_GROUP_BY
    with flag_hint({'group_by=': '--group-by '}):
        return group_keys(paths, args.group_by or DEFAULT_GROUP_BY)


def report_slides(args: argparse.Namespace, results: List[Dict[str, Any]],
                  classes: List[str]) -> None:
    """``--group-by``: print the per-slide table (tiles pooled by
    ``--pool``) and, with ``--out``, write ``<out name>_per_slide.csv``."""
    import numpy as np

    from rock_plugin.evaluation.slide_results import (DEFAULT_POOL,
                                                      format_slide_table,
                                                      slide_results,
                                                      write_slide_csv)
    from rock_plugin.utils.text import printable
    pool = args.pool or DEFAULT_POOL
    scores = np.array([[r['scores'][c] for c in classes] for r in results])
    rows = slide_results(scores, slide_keys(args, [r['file'] for r in
                                                   results]), mode=pool)
    print(f'\n{len(rows)} slides ({pool} of the scores of '
          f'{len(results)} images)')
    print(format_slide_table(rows, classes))
    if args.out:
        path = write_slide_csv(rows, classes, osp.splitext(args.out)[0] +
                               '_per_slide.csv')
        print(f'wrote {printable(path)}')


def set_unknown_threshold(args: argparse.Namespace, inferencer) -> bool:
    """Apply ``--unknown-threshold``; whether the model gives novelty
    scores (it has a feature bank), with a line saying the threshold."""
    from rock_plugin.apis.inferencer import UNKNOWN_LABEL
    from rock_plugin.utils.text import printable
    if inferencer.open_set is None:
        if args.unknown_threshold is not None:
            model = args.checkpoint or args.onnx
            raise ValueError(
                f'{model}: --unknown-threshold needs a model with a feature '
                'bank (trained with OpenSetLinearClsHead); this one gives '
                'no novelty score: train it again, or leave the flag out')
        return False
    inferencer.unknown_threshold = args.unknown_threshold
    whose = '--unknown-threshold' if args.unknown_threshold is not None \
        else "the model's threshold"
    print(f'novelty above {inferencer.novelty_threshold:.3g} ({whose}): '
          f'{printable(UNKNOWN_LABEL)}')
    return True


def main(argv=None) -> List[Dict[str, Any]]:
    """Predict, print a table, optionally save.

    A single image or video that cannot be read is an error; in a folder,
    each bad file is reported on stderr and skipped, and the run fails only
    when nothing could be predicted.

    Returns:
        list[dict]: The predictions.
    """
    args = parse_args(argv)
    setup_env(args)
    from rock_plugin.apis.inferencer import (UNKNOWN_LABEL, RockInferencer,
                                             write_predictions)
    from rock_plugin.utils.progress import track
    from rock_plugin.utils.text import printable
    errors: List[Tuple[str, str]] = []
    items, width, kind, shown, on_error = open_input(args, errors)
    if args.group_by is not None:
        if not isinstance(items, list):
            raise ValueError('--group-by pools the images of a folder, not '
                             'the frames of a video')
        slide_keys(args, items)  # a name it misses stops the run now
    if args.config is None:  # --onnx alone
        if args.tta:
            raise ValueError('--tta runs the PyTorch model; it needs CONFIG '
                             'and CHECKPOINT, not --onnx alone')
        inferencer = RockInferencer.from_onnx(args.onnx, args.device,
                                              args.batch_size, args.topk)
    else:
        inferencer = RockInferencer(args.config, args.checkpoint,
                                    args.device, args.batch_size, args.topk,
                                    args.backend, args.onnx, tta=args.tta)
    open_set = set_unknown_threshold(args, inferencer)
    views = Views(args, inferencer, isinstance(items, Iterator))
    # A bar on the terminal only (counts read inputs, bad ones too).
    items = track(views.remember(items), 'predicting',
                  len(items) if isinstance(items, list) else None)
    print(f'predicting {kind} ({args.backend}, batch {args.batch_size}'
          + (', TTA' if args.tta else '') + ')',
          flush=True)
    width = min(max(width, 4), 70)
    # A model with a feature bank: its novelty and answer columns too.
    extra = f'{"novelty":>7}  {"answer":<{len(UNKNOWN_LABEL)}}  ' \
        if open_set else ''
    print(f'{"file":<{width}}  {"top-1 class":<24} {"score":>6}  '
          f'{extra}top-{args.topk}')
    results = []
    start = time.perf_counter()
    for r in inferencer.iter_predict(items, on_error=on_error):
        topk = ', '.join(f'{printable(c)} {s:.3f}' for c, s in r['topk'])
        if open_set:
            extra = f'{r["novelty"]:>7.2f}  ' \
                f'{printable(r["answer"]):<{len(UNKNOWN_LABEL)}}  '
        print(f'{_short(shown(r["file"]), width):<{width}}  '
              f'{printable(r["pred_class"]):<24} '
              f'{r["pred_score"]:>6.3f}  {extra}{topk}', flush=True)
        results.append(r)
        views.show(r)
    views.close()
    seconds = time.perf_counter() - start
    rate = f', {len(results) / seconds:.1f} images/s' if seconds > 0 else ''
    print(f'{len(results)} predicted, {len(errors)} failed '
          f'({seconds:.2f} s{rate})')
    if open_set:
        print(f'{sum(r["unknown"] for r in results)} of {len(results)} '
              f'unknown (novelty above {inferencer.novelty_threshold:.3g})')
    if args.out and results:
        write_predictions(
            args.out, results, inferencer.classes, errors,
            info=dict(config=args.config, checkpoint=args.checkpoint,
                      onnx=args.onnx, backend=args.backend, input=args.input,
                      every_n=args.every_n if 'video' in kind else None,
                      topk=args.topk,
                      unknown_threshold=inferencer.novelty_threshold))
        print(f'wrote {printable(args.out)}')
    if args.group_by is not None and results:
        report_slides(args, results, inferencer.classes)
    if not results:
        raise ValueError(f'{args.input}: nothing could be predicted '
                         f'({len(errors)} unreadable files, listed above)')
    return results


if __name__ == '__main__':
    run(main)
