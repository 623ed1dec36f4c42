"""``OpenSetCalibrationHook``: fit the temperature, the feature bank and the
"unknown" threshold of an :class:`OpenSetLinearClsHead` during training."""
import copy
import os.path as osp
import random
from typing import List

import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.functional.calibration import (
    CROSSFIT_PARTS, calibration_temperature, crossfit_temperature_scores,
    expected_calibration_error, keep_known_threshold, softmax)
from rock_plugin.models.heads import OpenSetLinearClsHead
from rock_plugin.utils.model_wrappers import bare_model

from ..pooled_features import PooledFeatureCache


@HOOKS.register_module()
class OpenSetCalibrationHook(Hook):
    """After each training epoch (before its checkpoints are written),
    extract the pooled features of the training images (test pipeline: the
    centre view) and of the validation fold, then store in the head:

    - the temperature that minimises the validation NLL (at least 1),
      kept only if it also lowers the validation ECE (else 1:
      :func:`calibration_temperature`), so shown scores mean what they say;
    - the bank of training features and their classes;
    - the novelty statistics and the threshold that keeps ``keep_known`` of
      the validation images (without a validation fold: the training images,
      each against the others, an optimistic stand-in that is logged).

    With a frozen backbone the features are extracted once per run; with
    ``frozen_stages`` the frozen prefix's maps are, and each fit reruns the
    trainable stages only. Random
    states are left as they were (exact resume). The training image paths
    go in the checkpoint's ``meta.feature_bank_files`` (the evidence shown
    beside a prediction).

    Args:
        keep_known (float): Share of known images kept. Defaults to 0.95.
        min_temperature (float): Lowest temperature. Defaults to 1.
        interval (int): Epochs between fits when the backbone trains
            (each epoch when it is frozen: it is cheap then).

    Example:
        >>> custom_hooks = [dict(type='OpenSetCalibrationHook')]
    """
    priority = 'ABOVE_NORMAL'  # before the checkpoint hook saves

    def __init__(self, keep_known: float = 0.95,
                 min_temperature: float = 1.0, interval: int = 1):
        if not 0 < keep_known < 1:
            raise ValueError(f'keep_known must be in (0, 1), got '
                             f'{keep_known!r}')
        self.keep_known = keep_known
        self.min_temperature = min_temperature
        self.interval = interval
        self.bank_files: List[str] = []
        self._features = PooledFeatureCache()
        self._history = {}  # this epoch's history.csv values

    def after_train_epoch(self, runner) -> None:
        model = bare_model(runner.model)
        if not isinstance(getattr(model, 'head', None), OpenSetLinearClsHead):
            return
        frozen = not any(p.requires_grad for n, p in model.named_parameters()
                         if not n.startswith('head.'))
        if not (frozen or self.every_n_epochs(runner, self.interval)
                or self.is_last_train_epoch(runner)):
            return
        if not frozen:  # features change; a frozen prefix's maps do not
            self._features.drop_trained()
        states = (random.getstate(), np.random.get_state())
        try:
            with torch.random.fork_rng(devices=[]):
                self._fit(runner, model)
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])

    def _fit(self, runner, model) -> None:
        head = model.head
        train_set = copy.copy(runner.train_dataloader.dataset)
        val_set = runner.val_dataloader.dataset \
            if runner.val_loop is not None else None
        pipeline = val_set.pipeline if val_set is not None else \
            runner.cfg.get('test_dataloader', {}).get('dataset', {}).get(
                'pipeline')
        if pipeline is None or not hasattr(train_set, 'pipeline'):
            print_log('OpenSetCalibrationHook: no test pipeline for the '
                      'training images; no feature bank', logger='current',
                      level=30)
            return
        train_set.pipeline = pipeline if callable(pipeline) else \
            Compose(pipeline)
        # a FeatureCacheTrainLoop may hold these features already
        bank, bank_y = self._features(runner, model, train_set, 'train',
                                      getattr(runner, 'train_loop', None))
        if val_set is not None:
            feats, y = self._features(runner, model, val_set, 'val')
            knn = 1 - (torch.nn.functional.normalize(feats, dim=1) @
                       torch.nn.functional.normalize(bank, dim=1).t()
                       ).max(dim=1).values
            source = f'{len(y)} validation images'
        else:  # each training image against the others
            feats, y = bank, bank_y
            sims = torch.nn.functional.normalize(bank, dim=1)
            sims = sims @ sims.t()
            sims.fill_diagonal_(-1)
            knn = 1 - sims.max(dim=1).values
            source = f'{len(y)} training images (no validation fold: ' \
                'optimistic)'
        with torch.no_grad():
            logits = head.fc(feats.to(head.fc.weight.device)).double().cpu()
        energy = head.energy_score(logits)
        z, labels = logits.numpy(), y.numpy()
        t = calibration_temperature(z, labels, (self.min_temperature, 100.0))
        before = expected_calibration_error(softmax(z), labels)
        after = expected_calibration_error(softmax(z, t), labels)
        # `after` is measured on the images that fitted T: also give the
        # ECE with each image's T fitted on the others (README, CV)
        self._history = {}
        apart = ''
        if len(labels) >= 2:
            ece = expected_calibration_error(crossfit_temperature_scores(
                softmax(z), labels, min(CROSSFIT_PARTS, len(labels)),
                bounds=(self.min_temperature, 100.0)), labels)
            apart = f'; T fitted apart: {ece * 100:.2f}%'
            if val_set is not None:
                # percent, like the metric's val_ece
                self._history = dict(epoch=runner.epoch + 1,
                                     val_ece_apart=float(ece) * 100)
        stats = head.fit_novelty_stats(knn, energy)
        novelty = head.novelty_score(knn, energy, stats)
        threshold = keep_known_threshold(novelty.numpy(), self.keep_known)
        head.set_open_set(t, bank, bank_y, stats, threshold)
        # absolute: the evidence is found from any working directory
        self.bank_files = [
            osp.abspath(str(train_set.get_data_info(i)['img_path']))
            for i in range(len(train_set))]
        print_log(f'open set: temperature {t:.3f} (ECE on {source}: '
                  f'{before * 100:.2f}% -> {after * 100:.2f}%{apart}), '
                  f'feature bank {len(bank_y)} images, unknown above novelty '
                  f'{threshold:.3f} ({self.keep_known:.0%} known kept)',
                  logger='current')

    def history_values(self, runner) -> dict:
        """``{'val_ece_apart': ...}`` for this epoch's row of
        ``history.csv`` (``HistoryHook``): the validation ECE with each
        image's temperature fitted on the others; ``val_ece`` is measured
        on the images that fitted it. Empty without a fit this epoch."""
        values = dict(getattr(self, '_history', {}))
        if values.pop('epoch', None) != runner.epoch + 1:
            return {}
        return values

    def exact_neck_features(self, dataset):
        """The neck outputs this hook computed for ``dataset`` (the
        validation set), or None: ``CachedFeatureValLoop`` takes them rather
        than running the backbone again (:class:`PooledFeatureCache`)."""
        return self._features.exact_neck_features(dataset)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.bank_files:
            checkpoint.setdefault('meta', {})['feature_bank_files'] = \
                list(self.bank_files)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        files = (checkpoint.get('meta') or {}).get('feature_bank_files')
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            self.bank_files = list(files)
