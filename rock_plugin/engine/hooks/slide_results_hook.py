"""``SlideResultsHook``: a test run's per-slide results (``--group-by``)."""
import os
import os.path as osp
from typing import Optional

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.datasets.kfold import group_keys
from rock_plugin.evaluation.metrics import PredictionCollector
from rock_plugin.evaluation.slide_results import (DEFAULT_GROUP_BY,
                                                  DEFAULT_POOL, POOL_MODES,
                                                  slide_accuracy,
                                                  slide_results,
                                                  write_slide_csv)

POOL_WORDS = dict(mean='mean of tile probabilities',
                  logmean='mean of tile log-probabilities')


@HOOKS.register_module()
class SlideResultsHook(Hook):
    """Pool the tiles of each slide (sample) of a test run into one
    prediction: ``per_slide.csv`` in ``results_dir`` and a slide-accuracy
    line in ``TestResultsHook``'s report (rank 0, after the test epoch).

    The slide of a tile is read from its file name as
    ``cross_validate.py --group-by`` reads it
    (:func:`rock_plugin.datasets.kfold.group_keys`); every test file name
    is checked before the test epoch, so a name the expression misses
    stops the run at once, naming the file.

    Args:
        group_by (str, optional): A regular expression searched in the file
            name, group 1 (or the match) the slide key, or ``folder`` /
            ``folder:N``. Defaults to
            :data:`~rock_plugin.evaluation.slide_results.DEFAULT_GROUP_BY`
            (``Chert23_11.jpg`` -> ``Chert23``).
        pool (str, optional): ``'mean'`` or ``'logmean'``
            (:func:`~rock_plugin.evaluation.slide_results.pool_scores`).
            Defaults to ``DEFAULT_POOL`` (``'logmean'``).
        results_dir (str, optional): Defaults to ``<work_dir>/test_results``.

    Example:
        >>> custom_hooks = [dict(type='TestResultsHook'),
        ...                 dict(type='SlideResultsHook', pool='mean')]
    """
    priority = 'LOW'

    def __init__(self, group_by: Optional[str] = None,
                 pool: Optional[str] = None,
                 results_dir: Optional[str] = None):
        pool = pool or DEFAULT_POOL
        if pool not in POOL_MODES:
            raise ValueError(f'pool={pool!r}: use one of {POOL_MODES}')
        self.group_by = group_by or DEFAULT_GROUP_BY
        self.pool, self.results_dir = pool, results_dir
        #: What ``TestResultsHook`` adds to its report (rank 0).
        self.report_lines = []
        #: Rank 0, after the test epoch: the rows and the accuracy.
        self.results = {}

    def before_test_epoch(self, runner) -> None:
        self.report_lines, self.results = [], {}
        dataset = runner.test_dataloader.dataset
        group_keys([dataset.get_data_info(i)['img_path']
                    for i in range(len(dataset))], self.group_by)

    def after_test_epoch(self, runner, metrics: Optional[dict] = None):
        if not is_main_process():
            return
        predictions, classes = PredictionCollector.predictions_of(
            runner.test_evaluator)
        if not predictions:
            return
        keys = group_keys([p['img_path'] for p in predictions],
                          self.group_by)
        rows = slide_results(np.array([p['pred_score'] for p in predictions]),
                             keys, [p['gt_label'] for p in predictions],
                             self.pool)
        results_dir = self.results_dir or osp.join(runner.work_dir,
                                                   'test_results')
        os.makedirs(results_dir, exist_ok=True)
        path = write_slide_csv(rows, classes,
                               osp.join(results_dir, 'per_slide.csv'))
        accuracy = slide_accuracy(rows)
        right = sum(r['pred_label'] == r['gt_label'] for r in rows)
        self.results = dict(rows=rows, accuracy=accuracy, file=path)
        self.report_lines = [
            f'slide accuracy: {accuracy:.2f} % ({right}/{len(rows)} slides '
            f'of {len(predictions)} images; {POOL_WORDS[self.pool]}): '
            f'{osp.basename(path)}']
        mixed = sum(r['other_tiles'] > 0 for r in rows)
        if mixed:
            self.report_lines.append(
                f'  {mixed} slide(s) hold images of several classes: a '
                "slide's true class is that of most of its images "
                '(other_tiles in the CSV)')
