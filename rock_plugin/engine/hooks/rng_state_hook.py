"""``RngStateHook``: random generator states in checkpoints."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.utils.errors import CheckpointError

from ..mmengine_internals import is_resuming


@HOOKS.register_module()
class RngStateHook(Hook):
    """Store Python, NumPy and torch (CPU and CUDA) RNG states in checkpoints.

    mmengine only seeds at start; restoring the generators on ``--resume``
    makes a resumed ``--deterministic`` run repeat the uninterrupted one.
    States are plain lists and tensors, for ``weights_only=True`` loading.
    """
    priority = 'NORMAL'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        version, state, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint['rng_state'] = dict(
            python=[version, list(state), gauss],
            numpy=[name, keys.tolist(), int(pos), int(has_gauss),
                   float(cached)],
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if not state or not is_resuming(runner):
            return  # load_from / init: keep the run's own seeding
        try:
            self._restore(state)
        except (TypeError, ValueError, KeyError, IndexError,
                RuntimeError) as exc:  # a checkpoint is data: one line
            raise CheckpointError(
                f'{runner.cfg.get("load_from") or "checkpoint"}: its '
                f'rng_state is malformed ({type(exc).__name__}); it was not '
                'written by this tool. Resume from another checkpoint'
            ) from None

    @staticmethod
    def _restore(state: dict) -> None:
        version, py_state, gauss = state['python']
        random.setstate((version, tuple(py_state), gauss))
        name, keys, pos, has_gauss, cached = state['numpy']
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos,
                             has_gauss, cached))
        torch.set_rng_state(state['torch'])
        if state['cuda'] and torch.cuda.is_available() and \
                len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state['cuda'])
