"""``NanGuardHook``: stop at the first non-finite loss."""
import math
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.utils.errors import TrainingDivergedError


@HOOKS.register_module()
class NanGuardHook(Hook):
    """Raise :class:`TrainingDivergedError` when the loss is NaN or inf,
    before the epoch's checkpoint (mmengine would save NaN weights over the
    good ones); the message names the last good checkpoint.
    """
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not outputs or 'loss' not in outputs:
            return
        loss = outputs['loss']
        value = float(loss.item() if torch.is_tensor(loss) else loss)
        if math.isfinite(value):
            return
        last = osp.join(runner.work_dir, 'last_checkpoint')
        good = open(last).read().strip() if osp.isfile(last) else None
        keep = 'no checkpoint had been saved yet'
        if good:
            keep = (f'the last good checkpoint is {good} (continue from it '
                    'with cfg.resume=True after lowering the learning rate)')
        raise TrainingDivergedError(
            f'loss became {value} at epoch {runner.epoch + 1}, iteration '
            f'{batch_idx + 1} (global iteration {runner.iter + 1}); training '
            f'stopped before saving bad weights: {keep}')
