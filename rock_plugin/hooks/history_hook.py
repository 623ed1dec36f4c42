"""``HistoryHook``: the original's per-epoch history, as ``history.csv``."""
import csv
import os
import os.path as osp
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_reduce, collect_results, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.rock_metric import (RockMetric,
                                                macro_metrics_from_confusion)
from rock_plugin.utils.atomic_io import atomic_write
from .resume_validation_hook import validates_after

PER_CLASS_KEYS = ('precision', 'recall', 'f1-score')


@HOOKS.register_module()
class HistoryHook(Hook):
    """Write a row per epoch to ``history.csv``: the original trainer's
    ``metrics_outputs.csv`` and more.

    A row holds ``epoch``, ``lr``; the training ``train_loss`` (mean of the
    iterations' losses), ``train_accuracy/top1`` and macro
    ``train_precision``, ``train_recall``, ``train_f1-score`` of the
    predictions made on the augmented training batches while training (as
    the original did); ``val_loss`` (the head's training loss function on the
    validation set, mean over its images); every scalar validation metric;
    and per-class ``precision/<class>``, ``recall/<class>``,
    ``f1-score/<class>`` from :class:`RockMetric`. Train values are summed
    over all ranks; predictions and losses are read from the head's output
    with a forward hook, so cached validation gives the same values.

    The file is rewritten atomically every epoch. On ``--resume`` it is
    continued: rows after the resumed epoch are dropped, a row written again
    replaces the old one. ``epoch_N.pth`` is saved before epoch N is
    validated, so it carries the epoch's train values; the row is completed
    when :class:`ResumeValidationHook` validates that epoch again (or
    written without validation values if nothing does). A fresh run keeps an
    earlier history as ``history.<time>.csv``.

    Args:
        filename (str): CSV name in the work dir. Defaults to 'history.csv'.

    Example:
        >>> custom_hooks = [dict(type='HistoryHook'),
        ...                 dict(type='HistoryFigureHook'),
        ...                 dict(type='ResumeValidationHook')]
    """
    priority = 'NORMAL'

    def __init__(self, filename: str = 'history.csv'):
        self.filename = filename
        self.rows: List[Dict[str, object]] = []
        self._pending: Optional[Dict[str, object]] = None
        self._head = self._handle = self._scores = None
        self._loss = torch.zeros(2, dtype=torch.float64)  # sum, count
        self._confusion: Optional[torch.Tensor] = None
        self._val_losses: List[float] = []

    # -- the file ------------------------------------------------------------
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        self._head = getattr(model, 'head', None)
        if self._head is not None:
            self._handle = self._head.register_forward_hook(self._capture)
        path = osp.join(runner.work_dir, self.filename)
        self.rows = []
        if not is_main_process() or not osp.isfile(path):
            return
        stamp = time.strftime('%Y%m%d_%H%M%S')
        kept = osp.join(runner.work_dir, f'history.{stamp}.csv')
        try:
            with open(path, newline='', encoding='utf-8') as f:
                old = list(csv.DictReader(f))
            self.rows = [r for r in old if int(r['epoch']) <= runner.epoch]
        except (ValueError, KeyError, TypeError, csv.Error) as exc:
            os.replace(path, kept)
            runner.logger.warning(f'HistoryHook: {path} is damaged ({exc!r}); '
                                  f'kept as {kept}, starting a new one')
            return
        if runner.epoch == 0:
            os.replace(path, kept)
            self.rows = []
            runner.logger.info(f'HistoryHook: kept the previous history as '
                               f'{kept}')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        pending = checkpoint.get('history_pending')
        self._pending = dict(pending) if pending and runner._resume else None

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
        path = osp.join(runner.work_dir, self.filename)
        with atomic_write(path, newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval='')
            writer.writeheader()
            writer.writerows(sorted(self.rows, key=lambda r: int(r['epoch'])))

    # -- training ------------------------------------------------------------
    def _capture(self, module, args, output) -> None:
        if torch.is_tensor(output):
            self._scores = output.detach()

    def before_train_epoch(self, runner) -> None:
        if self._pending is not None:  # a resumed epoch nobody validated
            self._commit(runner, {})
        self._loss.zero_()
        num_classes = getattr(self._head, 'num_classes', None)
        self._confusion = torch.zeros(num_classes, num_classes,
                                      dtype=torch.int64) \
            if isinstance(num_classes, int) else None
        lrs = runner.optim_wrapper.get_lr()
        lr = next(iter(lrs.values()))[0] if lrs else float('nan')
        self._pending = dict(epoch=runner.epoch + 1, lr=lr)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs and 'loss' in outputs:
            loss = outputs['loss']
            self._loss += torch.tensor(
                [float(loss.item() if torch.is_tensor(loss) else loss), 1.0],
                dtype=torch.float64)
        scores, self._scores = self._scores, None
        samples = (data_batch or {}).get('data_samples')
        if self._confusion is None or scores is None or not samples or \
                scores.shape != (len(samples), len(self._confusion)):
            return
        labels = torch.cat([s.gt_label for s in samples]).cpu()
        cells = labels * len(self._confusion) + scores.argmax(1).cpu()
        self._confusion += torch.bincount(
            cells, minlength=self._confusion.numel()).view_as(self._confusion)

    def after_train_epoch(self, runner) -> None:
        all_reduce(self._loss)  # over every rank's iterations
        total, count = self._loss.tolist()
        values = dict(train_loss=total / count if count else float('nan'))
        if self._confusion is not None:
            all_reduce(self._confusion)
            train = macro_metrics_from_confusion(self._confusion.numpy())
            values.update({f'train_{k}': v for k, v in train.items()})
        self._pending = dict(self._pending or dict(epoch=runner.epoch + 1),
                             **values)
        if not validates_after(runner):
            self._commit(runner, {})

    # -- validation ----------------------------------------------------------
    def before_val_epoch(self, runner) -> None:
        self._val_losses = []

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        scores, self._scores = self._scores, None
        loss_module = getattr(self._head, 'loss_module', None)
        if scores is None or loss_module is None or not outputs or \
                len(outputs) != len(scores) or 'gt_label' not in outputs[0]:
            return
        labels = torch.cat([s.gt_label for s in outputs]).to(scores.device)
        with torch.no_grad():
            # per image, so the mean does not depend on the batch size
            losses = loss_module(scores.float(), labels,
                                 reduction_override='none')
        self._val_losses.extend(losses.reshape(-1).tolist())

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if self._pending is None or self._handle is None:
            return  # a stand-alone validation (e.g. tools/test.py)
        size = len(runner.val_loop.dataloader.dataset)
        losses = collect_results(self._val_losses, size)  # pads removed
        values = dict(val_loss=float(np.mean(losses)) if losses
                      else float('nan'))
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float)) or (
                    torch.is_tensor(value) and value.numel() == 1):
                values.setdefault(key, float(value))
        details = RockMetric.details_of(runner.val_loop.evaluator) or {}
        names = details.get('classes', [])
        for key in PER_CLASS_KEYS:
            per_class = details.get(f'{key}_per_class') or []
            if len(per_class) == len(names):
                values.update({f'{key}/{n}': float(v)
                               for n, v in zip(names, per_class)})
        self._commit(runner, values)

    def after_train(self, runner) -> None:
        if self._pending is not None:  # the last epoch was never validated
            self._commit(runner, {})
        if self._handle is not None:
            self._handle.remove()
            self._handle = self._head = None
