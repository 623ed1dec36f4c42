"""``PredictionVisualizationHook``: ``tools/test.py --show-dir``, test
images annotated with predicted and true class."""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.datasets.transforms import read_rgb
from rock_plugin.evaluation.metrics import PredictionCollector
from rock_plugin.visualization.annotate import (BLACK, GREEN, RED,
                                                labelled_tile, save_image)


def save_prediction_images(predictions: Sequence[dict],
                           class_names: Sequence[str], out_dir: str,
                           interval: int = 1,
                           wrong_only: bool = False) -> List[str]:
    """Save every ``interval``-th test image (of the misclassified ones with
    ``wrong_only``) into ``out_dir``, captioned with predicted and true
    class, as ``<row in prediction_results.csv>_<image name>.jpg`` (no
    collisions). Returns the files written.

    Example:
        >>> save_prediction_images(predictions, ['a', 'b'], 'show')
        ['show/00000_a_0.jpg', ...]
    """
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


@HOOKS.register_module()
class PredictionVisualizationHook(Hook):
    """mmpretrain's ``VisualizationHook`` for ``--show-dir``, drawn with
    :mod:`rock_plugin.visualization.annotate` from the original images:
    after the test epoch rank 0 saves :func:`save_prediction_images` of the
    test evaluator's ``PredictionCollector`` records (gathered from every
    rank, so ``interval`` and ``wrong_only`` count over the whole set).

    Args:
        out_dir (str): Where the images go (not inside the data).
        interval (int): Every N-th image. Defaults to 1.
        wrong_only (bool): Misclassified images only. Defaults to False.

    Example:
        >>> custom_hooks = [dict(type='PredictionVisualizationHook',
        ...                      out_dir='show', wrong_only=True)]
    """
    priority = 'LOW'  # after TestResultsHook, as the files were written

    def __init__(self, out_dir: str, interval: int = 1,
                 wrong_only: bool = False):
        if interval < 1:
            raise ValueError(f'--interval must be at least 1, got {interval}')
        self.out_dir = out_dir
        self.interval = interval
        self.wrong_only = wrong_only
        #: What ``TestResultsHook`` adds to its report (rank 0).
        self.report_lines = []

    def after_test_epoch(self, runner, metrics: Optional[dict] = None):
        self.report_lines = []
        if not is_main_process():
            return
        predictions, classes = PredictionCollector.predictions_of(
            runner.test_evaluator)
        shown = save_prediction_images(predictions, classes, self.out_dir,
                                       self.interval, self.wrong_only)
        self.report_lines = [f'{len(shown)} annotated images in '
                             f'{self.out_dir}']
