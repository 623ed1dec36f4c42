"""``HistoryFigureHook``: curves and confusion matrix, drawn while training."""
import os.path as osp
from concurrent.futures import Future
from functools import partial
from typing import Optional

from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation import ClassReportMetric, save_confusion_csv
from rock_plugin.utils.background import BackgroundExecutor
from rock_plugin.visualization import (plot_confusion_matrix, plot_curves,
                                       read_history)

from ..mmengine_internals import train_loop_is_built


@HOOKS.register_module()
class HistoryFigureHook(Hook):
    """Redraw ``curves.png`` from ``history.csv`` and write the latest
    validation confusion matrix (``confusion_matrix.csv`` / ``.png``), each
    only when its data changed, on a background thread (about 1 s, a
    head-only epoch): at most one drawing pending, all finished before the
    run ends, failures only warn.

    Args:
        history_file (str): The history CSV in the work dir.
        curves (bool): Draw ``curves.png``. Defaults to True.
        confusion (bool): Write the confusion matrix files. Defaults to True.
        background (bool): Draw in a background thread. Defaults to True.
    """
    priority = 'LOW'

    def __init__(self, history_file: str = 'history.csv', curves: bool = True,
                 confusion: bool = True, background: bool = True):
        self.history_file = history_file
        self.curves = curves
        self.confusion = confusion
        self.background = background
        self._drawn_history = self._drawn_confusion = None
        self._executor: Optional[BackgroundExecutor] = None
        self._drawing: Optional[Future] = None

    @master_only
    def after_train_epoch(self, runner) -> None:
        self._draw(runner, self._curves_job(runner))

    @master_only
    def after_val_epoch(self, runner, metrics=None) -> None:
        if not train_loop_is_built(runner):
            return  # a stand-alone validation (e.g. tools/test.py)
        jobs = self._curves_job(runner)
        details = ClassReportMetric.details_of(runner.val_loop.evaluator) or {}
        matrix, names = details.get('confusion'), details.get('classes', [])
        if self.confusion and matrix is not None and len(matrix) == len(names):
            save_confusion_csv(matrix, names, osp.join(
                runner.work_dir, 'confusion_matrix.csv'))
            drawn = (list(names), [list(map(int, r)) for r in matrix])
            if drawn != self._drawn_confusion:
                self._drawn_confusion = drawn
                jobs.append(partial(
                    plot_confusion_matrix, matrix, list(names),
                    osp.join(runner.work_dir, 'confusion_matrix.png'),
                    title=f'Validation, epoch {runner.epoch}'))
        self._draw(runner, jobs)

    def _curves_job(self, runner) -> list:
        path = osp.join(runner.work_dir, self.history_file)
        if not self.curves or not osp.isfile(path):
            return []
        try:
            rows = read_history(path)
        except ValueError as exc:  # edited by hand mid-run: skip a drawing
            runner.logger.warning(f'HistoryFigureHook: {exc}')
            return []
        if rows == self._drawn_history:
            return []  # unchanged since the last drawing
        self._drawn_history = rows
        return [partial(plot_curves, rows,
                        osp.join(runner.work_dir, 'curves.png'),
                        title=osp.basename(runner.work_dir.rstrip('/')))]

    def _draw(self, runner, jobs: list) -> None:
        if not jobs:
            return
        self.wait_for_drawing(runner)
        if not self.background:
            for job in jobs:
                job()
            return
        if self._executor is None:
            # a data loader's fork waits for its drawings (utils/background)
            self._executor = BackgroundExecutor('HistoryFigureHook')
        self._drawing = self._executor.submit(lambda: [job() for job in jobs])

    def wait_for_drawing(self, runner) -> None:
        """Block until the pending drawing (if any) is written."""
        drawing, self._drawing = self._drawing, None
        try:
            if drawing is not None:
                drawing.result()
        except Exception as exc:  # a plot must never kill a long run
            runner.logger.warning(
                f'HistoryFigureHook: drawing failed: {exc!r}')

    def after_run(self, runner) -> None:
        self.wait_for_drawing(runner)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
