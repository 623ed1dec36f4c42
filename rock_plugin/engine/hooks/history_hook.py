"""``HistoryHook``: a row of metrics per epoch in ``history.csv``."""
import os
import os.path as osp
import time
from typing import Dict, List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.metrics.head_output_stats import HeadOutputStats
from rock_plugin.evaluation.metrics.class_report import ClassReportMetric
from rock_plugin.utils.atomic_io import atomic_write_csv
from rock_plugin.utils.errors import CheckpointError
from rock_plugin.visualization import read_history
from ..mmengine_internals import is_resuming
from .resume_validation_hook import validates_after


@HOOKS.register_module()
class HistoryHook(Hook):
    """Write a row per epoch to ``history.csv``, rewritten atomically:
    ``epoch``, ``lr``, :class:`HeadOutputStats` values, scalar validation
    metrics, :class:`ClassReportMetric`'s per-class ``<metric>/<class>``
    and the ``history_values(runner)`` of hooks that run before it
    (``OpenSetCalibrationHook``: ``val_ece_apart``).

    ``--resume`` continues the file; ``epoch_N.pth`` carries the row's train
    values until :class:`ResumeValidationHook` validates the epoch again. A
    fresh run keeps an earlier history as ``history.<time>.csv``.

    Args:
        filename (str): CSV name in the work dir. Defaults to 'history.csv'.
    """
    priority = 'NORMAL'

    def __init__(self, filename: str = 'history.csv'):
        self.filename = filename
        self.rows: List[Dict[str, object]] = []
        self._pending: Optional[Dict[str, object]] = None
        self.stats = HeadOutputStats()

    def before_train(self, runner) -> None:
        self.stats.attach(runner.model)
        path = osp.join(runner.work_dir, self.filename)
        self.rows = []
        if not is_main_process() or not osp.isfile(path):
            return
        stamp = time.strftime('%Y%m%d_%H%M%S')
        kept = osp.join(runner.work_dir, f'history.{stamp}.csv')
        try:
            self.rows = [r for r in read_history(path)
                         if int(r['epoch']) <= runner.epoch]
        except (ValueError, KeyError) as exc:
            os.replace(path, kept)
            runner.logger.warning(f'HistoryHook: {exc}; kept as {kept}, '
                                  'starting a new history')
            return
        if runner.epoch == 0:
            os.replace(path, kept)
            self.rows = []
            runner.logger.info(f'HistoryHook: kept the previous history as '
                               f'{kept}')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        pending = checkpoint.get('history_pending')
        if pending and not isinstance(pending, dict):  # data, one line
            raise CheckpointError(
                f'{runner.cfg.get("load_from") or "checkpoint"}: its '
                'history_pending is not a dict; it was not written by this '
                'tool. Resume from another checkpoint')
        self._pending = dict(pending) if pending and is_resuming(runner) \
            else None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._pending is not None:
            checkpoint['history_pending'] = dict(self._pending)

    def _commit(self, runner, values: dict) -> None:
        row, self._pending = dict(self._pending, **values), None
        if not is_main_process():
            return
        self.rows = [r for r in self.rows if int(r['epoch']) != row['epoch']]
        self.rows.append(row)
        columns: List[str] = []
        for r in self.rows:
            columns.extend(k for k in r if k not in columns)
        rows = sorted(self.rows, key=lambda r: int(r['epoch']))
        atomic_write_csv(osp.join(runner.work_dir, self.filename),
                         [columns] + [[r.get(c, '') for c in columns]
                                      for r in rows])

    def before_train_epoch(self, runner) -> None:
        if self._pending is not None:  # a resumed epoch nobody validated
            self._commit(runner, {})
        self.stats.start_train_epoch()
        lrs = runner.optim_wrapper.get_lr()
        lr = next(iter(lrs.values()))[0] if lrs else float('nan')
        self._pending = dict(epoch=runner.epoch + 1, lr=lr)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if hasattr(loss, 'detach'):  # mmengine's log_vars keep the graph
            loss = loss.detach()
        self.stats.add_train_batch(
            (data_batch or {}).get('data_samples'),
            None if loss is None else float(loss))

    def after_train_epoch(self, runner) -> None:
        self._pending = dict(self._pending or dict(epoch=runner.epoch + 1),
                             **self.stats.train_values())
        # columns from hooks that ran before this one this epoch
        # (OpenSetCalibrationHook's val_ece_apart)
        for hook in runner.hooks:
            values = getattr(hook, 'history_values', None)
            if hook is not self and callable(values):
                self._pending.update(values(runner))
        if not validates_after(runner):
            self._commit(runner, {})

    def before_val_epoch(self, runner) -> None:
        self.stats.start_val()

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        self.stats.add_val_batch(outputs)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if self._pending is None:
            return  # a stand-alone validation (e.g. tools/test.py)
        values = dict(val_loss=self.stats.val_loss(
            len(runner.val_loop.dataloader.dataset)))
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float)) or (
                    torch.is_tensor(value) and value.numel() == 1):
                values.setdefault(key, float(value))
        if 'ece' in values:  # the metric's name; history says which split
            values['val_ece'] = values.pop('ece')
        details = ClassReportMetric.details_of(runner.val_loop.evaluator) or {}
        names = details.get('classes', [])
        for key in ('precision', 'recall', 'f1-score'):
            per_class = details.get(f'{key}_per_class') or []
            if len(per_class) == len(names):
                values.update({f'{key}/{n}': float(v)
                               for n, v in zip(names, per_class)})
        self._commit(runner, values)

    def after_train(self, runner) -> None:
        if self._pending is not None:  # the last epoch was never validated
            self._commit(runner, {})
        self.stats.detach()
