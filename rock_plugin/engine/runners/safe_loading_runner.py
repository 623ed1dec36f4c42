"""``SafeLoadingRunner``: mmengine's Runner, running no code from
checkpoints."""
from typing import Callable, Union

from mmengine.hooks import CheckpointHook
from mmengine.registry import RUNNERS  # where tools/train.py looks it up
from mmengine.runner import Runner

from rock_plugin.utils.checkpoint_io import (read_config_literal,
                                             safe_checkpoint_loaders,
                                             strip_config_text)

from ..mmengine_internals import (checkpoint_to_load, has_loaded,
                                  is_resuming, set_checkpoint_to_load)


# 'RockRunner': the earlier name, kept for saved configs.
@RUNNERS.register_module(name=['SafeLoadingRunner', 'RockRunner'])
class SafeLoadingRunner(Runner):
    """The MMEngine ``Runner`` with checkpoint reading that never runs code.

    ``Runner.resume`` runs the config text of a checkpoint to compare GPU
    counts; here that text is removed and ``gpu_ids`` read with :mod:`ast`.
    While it trains, validates or tests, mmengine's checkpoint loaders are
    the safe ones of :mod:`rock_plugin.utils.checkpoint_io`.

    Args:
        *args, **kwargs: As :class:`mmengine.runner.Runner`.

    Example:
        >>> runner_type = 'SafeLoadingRunner'  # in a config
    """

    def train(self):
        with safe_checkpoint_loaders():
            return super().train()

    def val(self):
        with safe_checkpoint_loaders():
            return super().val()

    def test(self):
        with safe_checkpoint_loaders():
            return super().test()

    def load_or_resume(self) -> None:
        """:meth:`Runner.load_or_resume`, but ``resume=True`` without
        ``load_from`` continues from this work dir's own latest checkpoint
        (:func:`~rock_plugin.utils.work_dir.find_resume_checkpoint`), not
        from whatever ``last_checkpoint`` names: in a copied or moved work
        dir that is the old dir's file."""
        if is_resuming(self) and checkpoint_to_load(self) is None and \
                not has_loaded(self):
            from rock_plugin.utils.work_dir import (
                checkpoint_dir, find_resume_checkpoint)
            out_dir = next((h.out_dir for h in self.hooks
                            if isinstance(h, CheckpointHook)), None)
            try:
                set_checkpoint_to_load(self, find_resume_checkpoint(
                    self.work_dir, checkpoint_dir(self.work_dir, out_dir)))
            except FileNotFoundError:
                pass  # as mmengine: nothing to resume is a fresh start
        super().load_or_resume()

    def load_checkpoint(self, filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """:meth:`Runner.load_checkpoint` through the safe loaders (which
        strip config text before any hook sees it), its config text removed
        again before :meth:`Runner.resume` could run it, and on resume the
        GPU-count check, after loading as in mmengine."""
        with safe_checkpoint_loaders():
            checkpoint = super().load_checkpoint(
                filename, map_location=map_location, strict=strict,
                revise_keys=revise_keys)
        # Loaders outside safe_checkpoint_loaders' schemes (open-mmlab://,
        # s3://...) keep the text: removed before resume() sees it.
        removed = strip_config_text(checkpoint)
        if is_resuming(self):
            self._check_world_size(removed.get('meta.config'),
                                   checkpoint.get('meta', {}))
        return checkpoint

    def _check_world_size(self, config_text, meta: dict) -> None:
        """mmengine's GPU-count check on resume, reading only ``gpu_ids``."""
        gpu_ids = meta.get('gpu_ids',
                           read_config_literal(config_text, 'gpu_ids'))
        if not isinstance(gpu_ids, (list, tuple)) or not gpu_ids or \
                len(gpu_ids) == self.world_size:
            return
        if not (self.auto_scale_lr or {}).get('enable', False):
            raise RuntimeError(
                f'the checkpoint was trained on {len(gpu_ids)} GPUs and this '
                f'run has {self.world_size} processes: the learning rate '
                'would not match. Set auto_scale_lr.enable=True to adjust '
                'it.')
        self.logger.info('resume: GPU count differs from the checkpoint; '
                         'the lr follows auto_scale_lr')


#: The earlier name, for ``from rock_plugin.engine import RockRunner``.
RockRunner = SafeLoadingRunner
