"""Evaluation as a Python API (``tools/test.py``): mmpretrain's test of a
checkpoint that strictly fits the model, then the original project's result
files, written atomically by rank 0."""
import copy
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log

from rock_plugin.utils.atomic_io import atomic_write_csv, atomic_write_json


def read_checkpoint_meta(checkpoint: str) -> dict:
    """A checkpoint's ``meta``, loaded safely ({} for a bare state dict)."""
    from rock_plugin.utils.checkpoint_io import load_checkpoint_file
    from rock_plugin.apis.onnx_metadata import check_classes
    from rock_plugin.utils.errors import DataError
    ckpt = load_checkpoint_file(osp.expanduser(checkpoint), map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    meta = dict(meta) if isinstance(meta, dict) else {}
    # A checkpoint is data: the values read from it must have their types.
    dataset_meta = meta.get('dataset_meta')
    if isinstance(dataset_meta, dict) and \
            dataset_meta.get('classes') is not None:
        check_classes(dataset_meta['classes'], checkpoint,
                      'meta.dataset_meta.classes')
    elif dataset_meta is not None and not isinstance(dataset_meta, dict):
        raise DataError('meta.dataset_meta must be a dict, got '
                        f'{type(dataset_meta).__name__}', checkpoint)
    seed = meta.get('seed')
    if seed is not None and (isinstance(seed, bool) or
                             not isinstance(seed, int)):
        raise DataError(f'meta.seed must be an integer, got {seed!r:.40}',
                        checkpoint)
    return meta


def _evaluator_list(evaluator) -> list:
    if evaluator is None:
        return []
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    return list(evaluator) if isinstance(evaluator, (list, tuple)) \
        else [evaluator]


def write_per_class_csv(metrics: Dict[str, object],
                        class_names: Sequence[str], out_file: str) -> str:
    """Write (atomically) and return ``out_file``: per-class precision,
    recall, F1 (percent) and support from ``compute_rock_metrics``, then a
    ``macro avg`` row and ``accuracy/topK`` rows (in the ``f1-score``
    column, as sklearn's ``classification_report`` does)."""
    total = int(sum(metrics['support']))
    rows = [('class', 'precision', 'recall', 'f1-score', 'support')]
    for row in zip(class_names, metrics['precision_per_class'],
                   metrics['recall_per_class'],
                   metrics['f1-score_per_class'], metrics['support']):
        rows.append([row[0], *(f'{v:.4f}' for v in row[1:4]), int(row[4])])
    rows.append(['macro avg', *(f'{metrics[k]:.4f}' for k in
                                ('precision', 'recall', 'f1-score')), total])
    rows += [[key, '', '', f'{metrics[key]:.4f}', total] for key in
             sorted(k for k in metrics if k.startswith('accuracy/top'))]
    return atomic_write_csv(out_file, rows)


def write_prediction_csv(predictions: Sequence[dict],
                         class_names: Sequence[str], out_file: str) -> str:
    """Write (atomically) and return ``out_file``, the original's
    ``prediction_results.csv``: ``File, Pre_label, True_label, Success`` and
    each class's score, a row per image."""
    header = ['File', 'Pre_label', 'True_label', 'Success', *class_names]
    return atomic_write_csv(out_file, [header] + [
        [p['img_path'], class_names[p['pred_label']],
         class_names[p['gt_label']], p['pred_label'] == p['gt_label'],
         *(f'{s:.6f}' for s in p['pred_score'])] for p in predictions])


def save_test_results(results_dir: str, predictions: Sequence[dict],
                      details: Dict[str, object], class_names: Sequence[str],
                      summary: dict, title: str = 'Test',
                      mistakes: int = 16) -> Dict[str, str]:
    """Write every result file of a test run into ``results_dir``
    (atomically): the tables of ``details`` (``compute_rock_metrics``'s) and
    ``predictions`` (``PredictionCollector``'s), the confusion matrix
    (``title``), one-vs-rest ROC and PR curves (AUC and AP also into
    ``summary``, then written as ``summary.json``) and a contact sheet of
    the ``mistakes`` most confident mistakes (0: none). Returns
    ``{kind: path}``."""
    from rock_plugin.visualization import (plot_confusion_matrix,
                                           save_confusion_csv)
    from rock_plugin.visualization.mistakes import draw_mistakes_sheet
    from rock_plugin.visualization.roc_pr import save_roc_pr
    join = lambda name: osp.join(results_dir, name)  # noqa: E731
    os.makedirs(results_dir, exist_ok=True)
    curve_files, areas = save_roc_pr(results_dir, predictions, class_names,
                                     title) if predictions else ({}, {})
    sheet = draw_mistakes_sheet(predictions, class_names,
                                join('mistakes.jpg'), n=mistakes) \
        if mistakes > 0 else None
    summary.update(areas)  # the caller prints them too
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
        summary=atomic_write_json(join('summary.json'), summary),
        **curve_files, **(dict(mistakes=sheet) if sheet else {}))


def save_prediction_images(predictions: Sequence[dict],
                           class_names: Sequence[str], out_dir: str,
                           interval: int = 1,
                           wrong_only: bool = False) -> List[str]:
    """Save every ``interval``-th test image (of the misclassified ones with
    ``wrong_only``) into ``out_dir``, captioned with predicted and true
    class, as ``<row in prediction_results.csv>_<image name>.jpg`` (no
    collisions). Returns the files written."""
    from rock_plugin.datasets.transforms import read_rgb
    from rock_plugin.visualization.annotate import (BLACK, GREEN, RED,
                                                    labelled_tile, save_image)
    chosen = [(i, p) for i, p in enumerate(predictions)
              if not wrong_only or p['pred_label'] != p['gt_label']]
    written = []
    os.makedirs(out_dir, exist_ok=True)
    for i, p in chosen[::interval]:
        pred, true = (class_names[p['pred_label']],
                      class_names[p['gt_label']])
        color = GREEN if pred == true else RED
        rgb = read_rgb(p['img_path'])
        # Longest side at most 512; tiny images enlarged so the text fits.
        size = min(512, max(256, max(rgb.shape[:2])))
        lines = [f'pred: {pred} ({p["pred_score"][p["pred_label"]]:.1%})',
                 f'true: {true}']
        stem = osp.splitext(osp.basename(p['img_path']))[0]
        path = osp.join(out_dir, f'{i:05d}_{stem}.jpg')
        save_image(path, labelled_tile(rgb, lines, size, color,
                                       [color, BLACK]))
        written.append(path)
    return written


def evaluate(cfg: Config, checkpoint: str, results_dir: Optional[str] = None,
             out: Optional[str] = None, out_item: str = 'pred',
             show_dir: Optional[str] = None, interval: int = 1,
             show_wrong_only: bool = False, meta: Optional[dict] = None,
             mistakes: int = 16) -> dict:
    """Test a checkpoint and write the result files.

    Args:
        cfg (Config): A complete config (``work_dir``, test data); unchanged.
        checkpoint (str): The ``.pth`` file; must fit the model strictly.
        results_dir (str, optional): Default ``<work_dir>/test_results``.
        out (str, optional): Also dump ``out_item`` to this ``.json``.
        out_item (str): ``'pred'`` (per image) or ``'metrics'``.
        show_dir (str, optional): Save annotated test images here.
        interval (int): With ``show_dir``: every N-th image.
        show_wrong_only (bool): With ``show_dir``: misclassified only.
        meta (dict, optional): The checkpoint's ``meta``, to check classes.
        mistakes (int): Mistakes on ``mistakes.jpg`` (0: no sheet).

    Returns:
        dict: ``metrics`` (every rank); on rank 0 also ``details``,
        ``predictions``, ``classes``, ``results_dir`` and ``files``.

    Example:
        >>> evaluate(cfg, 'work_dirs/rock_b4/best.pth')['metrics']
    """
    import torch.distributed as dist
    from mmengine.dist import get_world_size, is_main_process

    from rock_plugin.evaluation.metrics.prediction_collector import \
        PredictionCollector
    from rock_plugin.evaluation.metrics.rock_metric import (RockMetric,
                                                    compute_rock_metrics,
                                                    format_per_class_table)
    from .train import build_runner, check_checkpoint_fits
    if out and not out.lower().endswith('.json'):
        raise ValueError(f'--out {out}: use a .json file (pickle files '
                         'can run code when loaded, so none are written)')
    if interval < 1:
        raise ValueError(f'--interval must be at least 1, got {interval}')
    if cfg.get('test_dataloader') is None:
        raise ValueError(f'{cfg.filename}: the config has no test_dataloader')
    config_file = cfg.filename
    # The runner saves this config as <name>_test.py, not over the training
    # run's copy in the work dir (which predict and export read).
    stem = osp.splitext(osp.basename(cfg.filename or 'config.py'))[0]
    cfg = Config(cfg.to_dict(), cfg_text=cfg.text, filename=f'{stem}_test.py')
    # Per-image results; RockMetric's table is printed once, below.
    evaluators = [copy.deepcopy(m) for m in
                  _evaluator_list(cfg.get('test_evaluator'))]
    rock_metrics = [m for m in evaluators if m.get('type') in
                    ('RockMetric', 'mmpretrain.RockMetric')]
    for metric in rock_metrics:
        metric['log_table'] = False
    cfg.test_evaluator = evaluators + [dict(type='PredictionCollector')]
    cfg.load_from = osp.expanduser(checkpoint)
    cfg.resume = False
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, cfg.load_from, strict=True)

    meta = meta or {}
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
    try:
        if not is_main_process():
            return dict(metrics=metrics)
        predictions = next(m for m in runner.test_evaluator.metrics
                           if isinstance(m, PredictionCollector)).predictions
        num_classes = len(predictions[0]['pred_score']) if predictions else 0
        if len(classes) != num_classes:
            classes = [str(i) for i in range(num_classes)]
        details = RockMetric.details_of(runner.test_loop.evaluator)
        if not details or len(details.get('support', [])) != num_classes \
                or sum(details['support']) != len(predictions):
            # the config evaluates with another metric
            topk = tuple(rock_metrics[0].get('topk', (1, 5))) \
                if rock_metrics else (1, 5)
            details = compute_rock_metrics(
                np.array([p['pred_score'] for p in predictions], np.float64),
                np.array([p['gt_label'] for p in predictions]),
                num_classes, topk)
        results_dir = results_dir or osp.join(cfg.work_dir, 'test_results')
        test_ds = cfg.test_dataloader.dataset
        summary = dict(
            metrics={k: float(v) for k, v in metrics.items()
                     if isinstance(v, (int, float))},
            checkpoint=osp.abspath(osp.expanduser(checkpoint)),
            config=osp.abspath(config_file) if config_file else None,
            num_images=len(predictions), classes=classes,
            data_root=test_ds.get('data_root'),
            split=None if test_ds.get('split') is None else dict(
                split=test_ds.get('split'), ratio=test_ds.get('val_ratio'),
                fold=getattr(dataset, 'fold', test_ds.get('fold')),
                seed=test_ds.get('split_seed')),
            checkpoint_epoch=meta.get('epoch'), world_size=get_world_size(),
            tta=cfg.model.get('module') is not None,  # tta_config wrapped it
            time=time.strftime('%Y-%m-%d %H:%M:%S'))
        files = save_test_results(
            results_dir, predictions, details, classes, summary,
            title=f'Test, {osp.basename(checkpoint)}', mistakes=mistakes)
        if out:
            dump = summary['metrics'] if out_item == 'metrics' else [
                dict(p, gt_class=classes[p['gt_label']],
                     pred_class=classes[p['pred_label']])
                for p in predictions]
            files['out'] = atomic_write_json(out, dump)
        shown = save_prediction_images(predictions, classes, show_dir,
                                       interval, show_wrong_only) \
            if show_dir else []

        lines = ['\n' + format_per_class_table(details, classes),
                 '  '.join(f'{k}: {v:.2f}'
                           for k, v in summary['metrics'].items())]
        if 'roc_auc' in summary:
            auc, ap = summary['roc_auc'], summary['average_precision']
            lines.append(f'one-vs-rest ROC AUC macro {auc["macro"]:.4f} '
                         f'micro {auc["micro"]:.4f}, AP macro '
                         f'{ap["macro"]:.4f} micro {ap["micro"]:.4f}')
        lines.append(f'{len(predictions)} test images; results in '
                     f'{results_dir}:')
        lines += [f'  {osp.basename(p)}' for k, p in files.items()
                  if k != 'out']
        if out:
            lines.append(f'--out ({out_item}): {out}')
        if show_dir:
            lines.append(f'{len(shown)} annotated images in {show_dir}')
        print_log('\n'.join(lines), logger='current')
        return dict(metrics=metrics, details=details, predictions=predictions,
                    classes=classes, results_dir=results_dir, files=files)
    finally:
        # Ranks leave together: a rank exiting while rank 0 still writes
        # aborts gloo ("terminate called without an active exception").
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
