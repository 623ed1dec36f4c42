"""Test-only fault injection: SIGKILL the training process at chosen points.

Imported by tests through ``custom_imports``; never part of the package.
"""
import multiprocessing
import os
import os.path as osp
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _die():
    # The data-loader workers too, as `kill -9` of a process group (or the
    # OOM killer taking them all) would: orphaned workers would otherwise
    # linger until their parent watchdog notices, holding the test's pipes.
    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillAtHook(Hook):
    """Kill the process at ``point`` in ``epoch`` (1-based), or at each of
    ``points`` in turn, one per run.

    Points: ``train_iter`` (after iteration ``iter`` of the epoch),
    ``val_iter`` (after iteration ``iter`` of the epoch's validation),
    ``ckpt_write`` (while the epoch's checkpoint file is being written: after
    its bytes went to the temp file, before the rename).

    With ``points=[(point, epoch, iter), ...]`` a marker file in the work dir
    records each kill, so the resumed run goes past it to the next point
    (a chain of kills and resumes with one config).
    """
    priority = 'VERY_LOW'

    def __init__(self, point: str = None, epoch: int = None, iter: int = 1,
                 points=None):
        self.points = [tuple(p) for p in points] if points is not None \
            else [(point, epoch, iter)]
        self.chained = points is not None

    def _fire(self, runner, point, epoch, it=1):
        for i, target in enumerate(self.points):
            if target[0] != point or target[1] != epoch or \
                    (len(target) > 2 and target[2] != it):
                continue
            marker = osp.join(runner.work_dir, f'.killed_{i}')
            if self.chained:
                if osp.exists(marker):
                    continue
                open(marker, 'w').close()
            return True
        return False

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self._fire(runner, 'train_iter', runner.epoch + 1, batch_idx + 1):
            _die()

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        if self._fire(runner, 'val_iter', runner.epoch, batch_idx + 1):
            _die()

    def before_save_checkpoint(self, runner, checkpoint):
        if not self._fire(runner, 'ckpt_write', checkpoint['meta']['epoch']):
            return
        real_fsync = os.fsync

        def fsync_then_die(fd):
            real_fsync(fd)
            # only the checkpoint's temp file: a figure may be being saved
            # from a background thread at the same moment
            if '.pth' in os.readlink(f'/proc/self/fd/{fd}'):
                _die()
        os.fsync = fsync_then_die
