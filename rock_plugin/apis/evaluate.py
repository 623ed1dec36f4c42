"""Evaluation entry point behind ``tools/test.py``: a checkpoint on a test set.

Runs mmpretrain's test the usual way (``cfg.load_from = checkpoint``,
``Runner.from_cfg(cfg).test()``), collects every image's prediction with
:class:`~rock_plugin.evaluation.prediction_collector.PredictionCollector` and
writes, on rank 0 only and atomically, the files of the original project's
evaluation: ``per_class.csv``, ``confusion_matrix.csv/.png``,
``prediction_results.csv`` and ``summary.json``.
"""
import argparse
import copy
import csv
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from rock_plugin.apis.train import build_config, setup_device
from rock_plugin.apis.train import build_parser as build_train_parser
from rock_plugin.utils.atomic_io import atomic_write

# The original evaluation's prediction_results.csv columns, then the classes.
PREDICTION_COLUMNS = ('File', 'Pre_label', 'True_label', 'Success')
PER_CLASS_COLUMNS = ('class', 'precision', 'recall', 'f1-score', 'support')


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags: mmpretrain's ``tools/test.py`` plus ours."""
    parser = argparse.ArgumentParser(
        description='Evaluate a rock classifier checkpoint on the test set: '
        'per-class table, confusion matrix and per-image predictions.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--work-dir', help='where the run log goes (default: '
                        'work_dirs/<config name>)')
    parser.add_argument('--results-dir', help='where the result files go '
                        '(default: <work dir>/test_results)')
    parser.add_argument('--out', help='also dump per-image predictions (or '
                        'metrics with --out-item metrics) to this .json file')
    parser.add_argument('--out-item', choices=['pred', 'metrics'],
                        default='pred', help='what --out holds')
    parser.add_argument('--show-dir', help='save test images annotated with '
                        'predicted and true class names here')
    parser.add_argument('--interval', type=int, default=1,
                        help='with --show-dir: save every N-th image')
    parser.add_argument('--show-wrong-only', action='store_true',
                        help='with --show-dir: only misclassified images')
    parser.add_argument('--data-root', help='set data_root of the datasets')
    parser.add_argument('--split-validation', action='store_true',
                        help='evaluate on the validation fold carved out of '
                        'the training annotations (as in training)')
    parser.add_argument('--ratio', type=float, default=0.2,
                        help='validation fraction with --split-validation')
    parser.add_argument('--fold', type=int, default=None,
                        help='validation fold with --split-validation '
                        '(default: derived from the seed)')
    parser.add_argument('--seed', type=int, default=None,
                        help='seed of the split (default: the seed stored in '
                        'the checkpoint, i.e. the training run\'s)')
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out unreadable images (with a warning '
                        'each and a count) instead of stopping')
    parser.add_argument('--device', default=None,
                        help='cpu forces CPU; cuda (default when available)')
    parser.add_argument('--gpu-id', type=int, default=None,
                        help='which GPU for a single-GPU run')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow loading stock mmengine checkpoints you '
                        'trust')
    parser.add_argument('--debug', action='store_true',
                        help='show full tracebacks')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, xxx=yyy')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm',
                                               'mpi'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Fail on the user's mistakes before anything slow starts."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'{args.config}: config file not found')
    if not osp.isfile(osp.expanduser(args.checkpoint)):
        raise FileNotFoundError(
            f'{args.checkpoint}: checkpoint not found (give a .pth file, e.g. '
            'work_dirs/rock_b4/best_accuracy_top1_epoch_N.pth)')
    if args.out and not args.out.lower().endswith('.json'):
        raise ValueError(f'--out {args.out}: use a .json file (pickle files '
                         'can run code when loaded, so none are written)')
    if args.interval < 1:
        raise ValueError(f'--interval must be at least 1, got {args.interval}')


def read_checkpoint_meta(checkpoint: str) -> dict:
    """The ``meta`` of a checkpoint (seed, dataset classes), loaded safely.

    Args:
        checkpoint (str): The ``.pth`` file.

    Returns:
        dict: ``meta`` (empty for a bare state dict).
    """
    from rock_plugin.compat import load_checkpoint_file
    ckpt = load_checkpoint_file(osp.expanduser(checkpoint), map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


def _evaluator_list(evaluator) -> list:
    if evaluator is None:
        return []
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    return list(evaluator) if isinstance(evaluator, (list, tuple)) \
        else [evaluator]


def _rock_metric_topk(cfg: Config) -> Sequence[int]:
    for metric in _evaluator_list(cfg.get('test_evaluator')):
        if metric.get('type') in ('RockMetric', 'mmpretrain.RockMetric'):
            return tuple(metric.get('topk', (1, 5)))
    return (1, 5)


def build_test_config(args: argparse.Namespace,
                      meta: Optional[dict] = None) -> Config:
    """Turn the flags of :func:`build_parser` into the test runner config.

    The training flags' logic is reused through
    :func:`rock_plugin.apis.train.build_config`, so ``--split-validation
    --ratio --fold --seed`` carve exactly the fold a training run validated
    on. The split seed defaults to the one stored in the checkpoint.

    Args:
        args (argparse.Namespace): From :func:`build_parser`.
        meta (dict, optional): The checkpoint's ``meta``
            (:func:`read_checkpoint_meta`).

    Returns:
        Config: Ready for ``Runner.from_cfg``; its test evaluator ends with a
        ``PredictionCollector``.

    Example:
        >>> args = build_parser().parse_args(['configs/rock_b4.py', 'b.pth'])
        >>> cfg = build_test_config(args)
    """
    meta = meta or {}
    seed = args.seed if args.seed is not None else meta.get('seed')
    if seed is None:
        peek = Config.fromfile(args.config)
        if args.cfg_options:
            peek.merge_from_dict(args.cfg_options)
        seed = peek.get('randomness', {}).get('seed')
        test_ds = peek.get('test_dataloader', {}).get('dataset', {})
        if seed is None and (args.split_validation or
                             test_ds.get('split') is not None):
            # A random seed would pick a random fold: mostly training images.
            raise ValueError(
                'the test set is a fold of the training data, but the '
                'checkpoint stores no seed: pass --seed (and --fold/--ratio) '
                'as used in training')
    # The training parser's defaults, so flags it gains later keep working;
    # then every flag both tools share, from ours.
    train_args = build_train_parser().parse_args([args.config])
    for key, value in vars(args).items():
        if hasattr(train_args, key):
            setattr(train_args, key, value)
    train_args.seed = seed
    cfg = build_config(train_args)
    if cfg.get('test_dataloader') is None:
        raise ValueError(f'{args.config}: the config has no test_dataloader')
    if args.split_validation:
        test_ds = copy.deepcopy(cfg.val_dataloader.dataset)
        test_ds.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        cfg.test_dataloader.dataset = test_ds
    cfg.load_from = osp.expanduser(args.checkpoint)
    cfg.resume = False

    metrics = [copy.deepcopy(m) for m in
               _evaluator_list(cfg.get('test_evaluator'))]
    for metric in metrics:
        if metric.get('type') in ('RockMetric', 'mmpretrain.RockMetric'):
            metric['log_table'] = False  # evaluate() prints it, once
    metrics.append(dict(type='PredictionCollector'))
    cfg.test_evaluator = metrics
    return cfg


def _fmt(value: float) -> str:
    return f'{value:.4f}'


def write_per_class_csv(metrics: Dict[str, object],
                        class_names: Sequence[str], out_file: str) -> str:
    """Per-class precision / recall / F1 / support, then summary rows.

    Values are percent. After the classes come a ``macro avg`` row and one
    ``accuracy/topK`` row per top-k accuracy, with the accuracy in the
    ``f1-score`` column as in sklearn's ``classification_report``.

    Args:
        metrics (dict): Output of
            :func:`~rock_plugin.evaluation.rock_metric.compute_rock_metrics`.
        class_names (Sequence[str]): Names in label order.
        out_file (str): CSV to write (atomically).

    Returns:
        str: ``out_file``.
    """
    total = int(sum(metrics['support']))
    with atomic_write(out_file, newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(PER_CLASS_COLUMNS)
        for row in zip(class_names, metrics['precision_per_class'],
                       metrics['recall_per_class'],
                       metrics['f1-score_per_class'], metrics['support']):
            writer.writerow([row[0], *map(_fmt, row[1:4]), int(row[4])])
        writer.writerow(['macro avg', _fmt(metrics['precision']),
                         _fmt(metrics['recall']), _fmt(metrics['f1-score']),
                         total])
        for key in sorted(k for k in metrics if k.startswith('accuracy/top')):
            writer.writerow([key, '', '', _fmt(metrics[key]), total])
    return out_file


def write_prediction_csv(predictions: Sequence[dict],
                         class_names: Sequence[str], out_file: str) -> str:
    """One row per image as the original's ``prediction_results.csv``.

    Columns: ``File``, ``Pre_label`` (predicted class), ``True_label``,
    ``Success`` (``True``/``False``), then the score of each class.

    Args:
        predictions (Sequence[dict]): ``img_path``, ``gt_label``,
            ``pred_label``, ``pred_score`` per image.
        class_names (Sequence[str]): Names in label order.
        out_file (str): CSV to write (atomically).

    Returns:
        str: ``out_file``.
    """
    with atomic_write(out_file, newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow([*PREDICTION_COLUMNS, *class_names])
        for p in predictions:
            writer.writerow([
                p['img_path'], class_names[p['pred_label']],
                class_names[p['gt_label']],
                p['pred_label'] == p['gt_label'],
                *(f'{s:.6f}' for s in p['pred_score'])])
    return out_file


def _dump_json(obj, out_file: str) -> str:
    with atomic_write(out_file, encoding='utf-8') as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write('\n')
    return out_file


def save_test_results(results_dir: str, predictions: Sequence[dict],
                      details: Dict[str, object], class_names: Sequence[str],
                      summary: dict, title: str = 'Test') -> Dict[str, str]:
    """Write every result file of a test run (atomically).

    Args:
        results_dir (str): Folder for the files (created).
        predictions (Sequence[dict]): From ``PredictionCollector``.
        details (dict): Full metrics
            (:func:`~rock_plugin.evaluation.rock_metric.compute_rock_metrics`).
        class_names (Sequence[str]): Names in label order.
        summary (dict): Written as ``summary.json``.
        title (str): Confusion-matrix figure title.

    Returns:
        dict: ``{kind: path}`` of the files written.

    Example:
        >>> files = save_test_results('work_dirs/x/test_results', preds,
        ...                           details, ['a', 'b'], dict(num_images=2))
    """
    from rock_plugin.visualization import (plot_confusion_matrix,
                                           save_confusion_csv)
    join = lambda name: osp.join(results_dir, name)  # noqa: E731
    os.makedirs(results_dir, exist_ok=True)
    return dict(
        per_class=write_per_class_csv(details, class_names,
                                      join('per_class.csv')),
        confusion_csv=save_confusion_csv(details['confusion'], class_names,
                                         join('confusion_matrix.csv')),
        confusion_png=plot_confusion_matrix(details['confusion'], class_names,
                                            join('confusion_matrix.png'),
                                            title=title),
        predictions=write_prediction_csv(predictions, class_names,
                                         join('prediction_results.csv')),
        summary=_dump_json(summary, join('summary.json')))


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font only
        return ImageFont.load_default()


def draw_prediction(img_path: str, pred_class: str, true_class: str,
                    score: float, max_side: int = 512):
    """The image with a caption band: predicted (score) and true class.

    The band is green for a correct prediction, red for a wrong one.

    Args:
        img_path (str): Image file.
        pred_class (str): Predicted class name.
        true_class (str): True class name.
        score (float): Score of the predicted class (0-1).
        max_side (int): Longest side of the saved image.

    Returns:
        PIL.Image.Image: The annotated image.
    """
    from PIL import Image, ImageDraw
    with Image.open(img_path) as img:
        img = img.convert('RGB')
    img.thumbnail((max_side, max_side))
    if max(img.size) < 256:  # tiny images: enlarge so the caption fits
        factor = 256 / max(img.size)
        img = img.resize((round(img.width * factor),
                          round(img.height * factor)), Image.NEAREST)
    font = _font(max(12, img.width // 32))
    lines = [f'pred: {pred_class} ({score:.1%})', f'true: {true_class}']
    measure = ImageDraw.Draw(img)
    boxes = [measure.textbbox((0, 0), line, font=font) for line in lines]
    pad, line_h = 4, max(b[3] - b[1] for b in boxes) + 4
    width = max(img.width, max(b[2] for b in boxes) + 2 * pad)
    band = 2 * line_h + pad
    correct = pred_class == true_class
    canvas = Image.new('RGB', (width, img.height + band),
                       (0, 120, 0) if correct else (170, 0, 0))
    canvas.paste(img, (0, band))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * line_h), line, fill=(255, 255, 255),
                  font=font)
    return canvas


def save_prediction_images(predictions: Sequence[dict],
                           class_names: Sequence[str], out_dir: str,
                           interval: int = 1,
                           wrong_only: bool = False) -> List[str]:
    """Save test images annotated with predicted and true class names.

    Files are ``<row>_<image name>.jpg``, ``row`` being the image's row in
    ``prediction_results.csv`` (0-based), so names never collide.

    Args:
        predictions (Sequence[dict]): From ``PredictionCollector``.
        class_names (Sequence[str]): Names in label order.
        out_dir (str): Folder for the images (created).
        interval (int): Save every ``interval``-th selected image.
        wrong_only (bool): Select misclassified images only.

    Returns:
        list[str]: The files written.

    Example:
        >>> save_prediction_images(preds, ['a', 'b'], 'show', interval=10)
    """
    chosen = [(i, p) for i, p in enumerate(predictions)
              if not wrong_only or p['pred_label'] != p['gt_label']]
    written = []
    os.makedirs(out_dir, exist_ok=True)
    for i, p in chosen[::interval]:
        image = draw_prediction(p['img_path'], class_names[p['pred_label']],
                                class_names[p['gt_label']],
                                p['pred_score'][p['pred_label']])
        stem = osp.splitext(osp.basename(p['img_path']))[0]
        path = osp.join(out_dir, f'{i:05d}_{stem}.jpg')
        with atomic_write(path, 'wb') as f:
            image.save(f, format='JPEG', quality=90)
        written.append(path)
    return written


def _details(runner, predictions: Sequence[dict], num_classes: int,
             topk: Sequence[int]) -> Dict[str, object]:
    """RockMetric's full result from the message hub; computed from the
    predictions when the config evaluates with another metric."""
    from rock_plugin.evaluation.rock_metric import (RockMetric,
                                                    compute_rock_metrics)
    details = runner.message_hub.get_info(RockMetric.DETAILS_KEY)
    if details and len(details.get('support', [])) == num_classes and \
            sum(details['support']) == len(predictions):
        return details
    scores = np.array([p['pred_score'] for p in predictions], np.float64)
    labels = np.array([p['gt_label'] for p in predictions])
    return compute_rock_metrics(scores, labels, num_classes, topk)


def evaluate(argv: Optional[List[str]] = None) -> dict:
    """Test a checkpoint and write the result files (``tools/test.py``).

    Args:
        argv (list[str], optional): Flags of :func:`build_parser` (default
            ``sys.argv[1:]``).

    Returns:
        dict: ``metrics`` (scalars, every rank); on rank 0 also ``details``
        (per-class lists, support, confusion), ``predictions`` (per image),
        ``classes``, ``results_dir`` and ``files`` (``{kind: path}``).

    Example:
        >>> res = evaluate(['configs/rock_b4.py',
        ...                 'work_dirs/rock_b4/epoch_100.pth',
        ...                 '--data-root', 'datas'])
        >>> res['metrics']['accuracy/top1']
    """
    args = build_parser().parse_args(argv)
    _check_args(args)
    setup_device(args)
    import rock_plugin  # noqa: F401  (registries, safe checkpoint loading)
    # registers PredictionCollector (not imported by the package yet)
    import rock_plugin.evaluation.prediction_collector  # noqa: F401
    import torch.distributed as dist
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from rock_plugin.compat import init_distributed

    own_group = dist.is_available() and not dist.is_initialized()
    backend = init_distributed(args.launcher, args.device)
    meta = read_checkpoint_meta(args.checkpoint)
    cfg = build_test_config(args, meta)
    if backend:
        cfg.env_cfg = dict(cfg.get('env_cfg', {}))
        cfg.env_cfg['dist_cfg'] = dict(cfg.env_cfg.get('dist_cfg', {}),
                                       backend=backend)
    runner = Runner.from_cfg(cfg)

    dataset = runner.test_loop.dataloader.dataset
    classes = [str(c) for c in dataset.metainfo.get('classes', ())]
    trained = (meta.get('dataset_meta') or {}).get('classes')
    if trained and classes and list(trained) != classes:
        raise ValueError(
            f'the test data has classes {classes} but the checkpoint was '
            f'trained on {list(trained)}: labels would not match. Point '
            '--data-root at the right data or set the class names, e.g. '
            '--cfg-options test_dataloader.dataset.classes=annotations.txt')

    metrics = runner.test()
    result = dict(metrics=metrics)
    try:
        if is_main_process():
            result.update(_report(args, cfg, runner, meta, metrics, classes))
    finally:
        # Ranks leave together: a rank exiting while rank 0 still writes
        # aborts gloo ("terminate called without an active exception").
        if own_group and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    return result


def _report(args: argparse.Namespace, cfg: Config, runner, meta: dict,
            metrics: dict, classes: List[str]) -> dict:
    """Rank 0: write the result files, print the table and the file list."""
    from mmengine.dist import get_world_size

    from rock_plugin.evaluation.prediction_collector import \
        PredictionCollector
    from rock_plugin.evaluation.rock_metric import format_per_class_table
    dataset = runner.test_loop.dataloader.dataset
    collector = next(m for m in runner.test_evaluator.metrics
                     if isinstance(m, PredictionCollector))
    predictions = collector.predictions
    num_classes = len(predictions[0]['pred_score']) if predictions else 0
    if len(classes) != num_classes:
        classes = [str(i) for i in range(num_classes)]
    details = _details(runner, predictions, num_classes,
                       _rock_metric_topk(cfg))
    results_dir = args.results_dir or osp.join(cfg.work_dir, 'test_results')
    test_ds = cfg.test_dataloader.dataset
    summary = dict(
        metrics={k: float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float))},
        checkpoint=osp.abspath(osp.expanduser(args.checkpoint)),
        config=osp.abspath(args.config),
        num_images=len(predictions),
        classes=classes,
        data_root=test_ds.get('data_root'),
        split=None if test_ds.get('split') is None else dict(
            split=test_ds.get('split'), ratio=test_ds.get('val_ratio'),
            fold=getattr(dataset, 'fold', test_ds.get('fold')),
            seed=test_ds.get('split_seed')),
        checkpoint_epoch=meta.get('epoch'),
        world_size=get_world_size(),
        time=time.strftime('%Y-%m-%d %H:%M:%S'))
    files = save_test_results(
        results_dir, predictions, details, classes, summary,
        title=f'Test, {osp.basename(args.checkpoint)}')
    if args.out:
        dump = summary['metrics'] if args.out_item == 'metrics' else [
            dict(p, gt_class=classes[p['gt_label']],
                 pred_class=classes[p['pred_label']]) for p in predictions]
        files['out'] = _dump_json(dump, args.out)
    shown = []
    if args.show_dir:
        shown = save_prediction_images(predictions, classes, args.show_dir,
                                       args.interval, args.show_wrong_only)

    scalars = '  '.join(f'{k}: {v:.2f}' for k, v in
                        summary['metrics'].items())
    lines = ['\n' + format_per_class_table(details, classes), scalars,
             f'{len(predictions)} test images; results in {results_dir}:']
    lines += [f'  {osp.basename(p)}' for k, p in files.items() if k != 'out']
    if args.out:
        lines.append(f'--out ({args.out_item}): {args.out}')
    if args.show_dir:
        lines.append(f'{len(shown)} annotated images in {args.show_dir}')
    print_log('\n'.join(lines), logger='current')
    return dict(details=details, predictions=predictions, classes=classes,
                results_dir=results_dir, files=files)
