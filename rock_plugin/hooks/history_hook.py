"""``HistoryHook``: the original's per-epoch history CSV and curves."""
import copy
import csv
import os
import os.path as osp
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.rock_metric import RockMetric
from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.visualization import (plot_confusion_matrix, plot_curves,
                                       save_confusion_csv)

PER_CLASS_KEYS = ('precision', 'recall', 'f1-score')


def _as_lists(matrix) -> list:
    return [[int(v) for v in row] for row in matrix]


@HOOKS.register_module()
class HistoryHook(Hook):
    """Append a row per epoch to ``history.csv`` and redraw ``curves.png``.

    A row holds ``epoch``, ``lr``, ``train_loss`` (mean over the epoch and
    over all ranks) and every scalar validation metric, plus per-class
    ``precision/<class>``, ``recall/<class>``, ``f1-score/<class>`` columns
    when :class:`RockMetric` reports them. The latest
    validation confusion matrix is written as ``confusion_matrix.csv`` and
    ``confusion_matrix.png`` (the image is redrawn only when the matrix
    changes, so its title names the first epoch that gave it).

    Every file is rewritten atomically (temp file + rename), so a kill never
    leaves a truncated CSV. On ``--resume`` the existing file is continued:
    rows of epochs after the resumed checkpoint are dropped and a row for an
    epoch that is written again replaces the old one, so there are no
    duplicate or lost rows. mmengine saves the epoch-N checkpoint *before*
    validating epoch N, so a run killed during that validation would lose
    its row; the checkpoint therefore carries the epoch's pending train row
    and a resumed run validates epoch N again first (the same model gives the
    same numbers, and the random generators advance exactly as in an
    uninterrupted run). A fresh run in a work dir that already holds a
    history keeps the old file as ``history.<time>.csv``.

    Args:
        filename (str): CSV name in the work dir. Defaults to 'history.csv'.
        plot (bool): Redraw ``curves.png`` every epoch. Defaults to True.
        plot_confusion (bool): Write the confusion matrix files.
        plot_in_background (bool): Draw the images in a background thread
            while the next epoch runs (the CSV is always written at once).
            Drawing both figures costs about 1 s a epoch on a CPU, as much as
            a whole head-only epoch of the fast recipe. At most one drawing is
            pending (the next epoch's waits for it) and every drawing is
            finished before training ends. Defaults to True.

    Example:
        >>> custom_hooks = [dict(type='HistoryHook')]
    """
    priority = 'NORMAL'

    def __init__(self, filename: str = 'history.csv', plot: bool = True,
                 plot_confusion: bool = True,
                 plot_in_background: bool = True):
        self.filename = filename
        self.plot = plot
        self.plot_confusion = plot_confusion
        self.plot_in_background = plot_in_background
        self._executor: Optional[ThreadPoolExecutor] = None
        self._drawing: Optional[Future] = None
        self._drawn_confusion = None
        self.rows: List[Dict[str, object]] = []
        self._pending: Optional[Dict[str, object]] = None
        self._loss_sum = 0.0
        self._loss_count = 0

    # -- paths ---------------------------------------------------------------
    def _path(self, runner, name=None) -> str:
        return osp.join(runner.work_dir, name or self.filename)

    # -- life cycle ----------------------------------------------------------
    def before_train(self, runner) -> None:
        path = self._path(runner)
        self.rows = []
        if is_main_process() and osp.isfile(path):
            self._load_rows(runner, path)
        if runner.epoch > 0:
            self._revalidate_resumed_epoch(runner)

    def _load_rows(self, runner, path: str) -> None:
        if runner.epoch == 0:
            stamp = time.strftime('%Y%m%d_%H%M%S')
            os.replace(path, self._path(runner, f'history.{stamp}.csv'))
            runner.logger.info(f'HistoryHook: kept the previous history as '
                               f'history.{stamp}.csv')
            return
        with open(path, newline='', encoding='utf-8') as f:
            old = list(csv.DictReader(f))
        self.rows = [r for r in old if int(r['epoch']) <= runner.epoch]
        runner.logger.info(
            f'HistoryHook: continuing {path} ({len(self.rows)} rows up to '
            f'epoch {runner.epoch}, {len(old) - len(self.rows)} later rows '
            'dropped)')

    def _revalidate_resumed_epoch(self, runner) -> None:
        if self._pending is not None and runner.val_loop is not None and \
                self._will_validate(runner, runner.epoch):
            runner.logger.info(f'HistoryHook: validating resumed epoch '
                               f'{runner.epoch} again for its history row')
            runner.val_loop.run()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._pending is not None:
            checkpoint['history_pending'] = dict(self._pending)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        pending = checkpoint.get('history_pending')
        self._pending = dict(pending) if pending and runner._resume else None

    def before_train_epoch(self, runner) -> None:
        self._loss_sum, self._loss_count = 0.0, 0
        lrs = runner.optim_wrapper.get_lr()
        lr = next(iter(lrs.values()))[0] if lrs else float('nan')
        self._pending = dict(epoch=runner.epoch + 1, lr=lr)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs and 'loss' in outputs:
            loss = outputs['loss']
            self._loss_sum += float(loss.item() if torch.is_tensor(loss) else loss)
            self._loss_count += 1

    def after_train_epoch(self, runner) -> None:
        stats = torch.tensor([self._loss_sum, float(self._loss_count)],
                             dtype=torch.float64)
        all_reduce(stats)  # mean over every rank's iterations
        if self._pending is None:
            self._pending = dict(epoch=runner.epoch, lr=float('nan'))
        self._pending['train_loss'] = (stats[0] / stats[1]).item() \
            if stats[1] > 0 else float('nan')
        if not self._will_validate(runner):
            self._commit(runner, {})

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if runner._train_loop is None or isinstance(runner._train_loop, dict) \
                or self._pending is None:
            return  # a stand-alone validation (e.g. tools/test.py)
        self._commit(runner, metrics or {})

    # -- helpers -------------------------------------------------------------
    @staticmethod
    def _will_validate(runner, epoch: Optional[int] = None) -> bool:
        """Mirror ``EpochBasedTrainLoop.run``'s condition to validate after
        ``epoch`` (1-based; default: the epoch now finishing)."""
        loop = runner.train_loop
        if runner.val_loop is None:
            return False
        if epoch is None:
            epoch = runner.epoch + 1  # the loop advances its counter later
        return (epoch >= loop.val_begin
                and (epoch % loop.val_interval == 0
                     or epoch == loop.max_epochs))

    def _commit(self, runner, metrics: dict) -> None:
        row = dict(self._pending)
        self._pending = None
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                row[key] = value
            elif torch.is_tensor(value) and value.numel() == 1:
                row[key] = value.item()
        details = (runner.message_hub.get_info(RockMetric.DETAILS_KEY) or {}) \
            if metrics else {}
        names = details.get('classes', [])
        for key in PER_CLASS_KEYS:
            values = details.get(f'{key}_per_class')
            if values is not None and len(values) == len(names):
                for name, value in zip(names, values):
                    row[f'{key}/{name}'] = float(value)
        if not is_main_process():
            return
        self.rows = [r for r in self.rows if int(r['epoch']) != row['epoch']]
        self.rows.append(row)
        self._write_csv(runner)
        confusion = details.get('confusion')
        if self.plot_confusion and confusion is not None \
                and len(confusion) == len(names):
            save_confusion_csv(confusion, names,
                               self._path(runner, 'confusion_matrix.csv'))
        else:
            confusion = None
        self._draw(runner, copy.deepcopy(self.rows), confusion, list(names),
                   row['epoch'])

    # -- drawing -------------------------------------------------------------
    def _draw(self, runner, rows, confusion, names, epoch) -> None:
        jobs = []
        if self.plot:
            jobs.append((plot_curves, (rows, self._path(runner, 'curves.png')),
                         dict(title=osp.basename(runner.work_dir.rstrip('/')))))
        drawn = (names, _as_lists(confusion)) if confusion is not None \
            else None
        if drawn is not None and drawn != self._drawn_confusion:
            self._drawn_confusion = drawn  # else unchanged: already drawn
            jobs.append((plot_confusion_matrix,
                         (confusion, names,
                          self._path(runner, 'confusion_matrix.png')),
                         dict(title=f'Validation, epoch {epoch}')))
        if not jobs:
            return

        def draw():
            for func, args, kwargs in jobs:
                func(*args, **kwargs)

        self.wait_for_drawing(runner)
        if not self.plot_in_background:
            draw()
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix='HistoryHook')
        self._drawing = self._executor.submit(draw)

    def wait_for_drawing(self, runner) -> None:
        """Block until the pending background drawing (if any) is written.
        A failed drawing is logged as a warning: it never stops training."""
        drawing, self._drawing = self._drawing, None
        if drawing is None:
            return
        try:
            drawing.result()
        except Exception as exc:  # a plot must never kill a long run
            runner.logger.warning(
                f'HistoryHook: drawing the curves failed: {exc!r}')

    def after_run(self, runner) -> None:
        self.wait_for_drawing(runner)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _write_csv(self, runner) -> None:
        columns: List[str] = []
        for r in self.rows:
            columns.extend(k for k in r if k not in columns)
        with atomic_write(self._path(runner), newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval='')
            writer.writeheader()
            for r in sorted(self.rows, key=lambda r: int(r['epoch'])):
                writer.writerow(r)
