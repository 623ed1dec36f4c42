"""Test-only fault injection: SIGKILL the training process at a chosen point.

Imported by tests through ``custom_imports``; never part of the package.
"""
import os
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillAtHook(Hook):
    """Kill the process at ``point`` in ``epoch`` (1-based).

    Points: ``train_iter`` (after iteration ``iter`` of the epoch),
    ``val_iter`` (during the epoch's validation), ``ckpt_write`` (while the
    epoch's checkpoint file is being written: after its bytes went to the
    temp file, before the rename).
    """
    priority = 'VERY_LOW'

    def __init__(self, point: str, epoch: int, iter: int = 1):
        self.point, self.epoch, self.iter = point, epoch, iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.point == 'train_iter' and runner.epoch + 1 == self.epoch \
                and batch_idx + 1 == self.iter:
            _die()

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        if self.point == 'val_iter' and runner.epoch == self.epoch \
                and batch_idx + 1 == self.iter:
            _die()

    def before_save_checkpoint(self, runner, checkpoint):
        if self.point == 'ckpt_write' and \
                checkpoint['meta']['epoch'] == self.epoch:
            real_fsync = os.fsync

            def fsync_then_die(fd):
                real_fsync(fd)
                # only the checkpoint's temp file: HistoryHook may be saving
                # a figure from a background thread at the same moment
                if '.pth' in os.readlink(f'/proc/self/fd/{fd}'):
                    _die()
            os.fsync = fsync_then_die
