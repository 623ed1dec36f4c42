"""``ResumableEarlyStoppingHook``: early stopping that survives --resume."""
from mmengine.hooks import EarlyStoppingHook
from mmpretrain.registry import HOOKS

from ..mmengine_internals import is_resuming

STATE_KEY = 'early_stopping'


@HOOKS.register_module()
class ResumableEarlyStoppingHook(EarlyStoppingHook):
    """mmengine's ``EarlyStoppingHook`` with its count of validations
    without improvement and its best score kept in checkpoints.

    mmengine's hook keeps both in memory only, so ``--resume`` restarted the
    patience and a resumed run trained on for up to ``patience`` more epochs
    than the uninterrupted one. ``epoch_N.pth`` is written before epoch N is
    validated; ``ResumeValidationHook`` repeats that validation on resume,
    which brings the restored count to where the uninterrupted run had it.
    The state is plain numbers in ``checkpoint['meta']['early_stopping']``
    (``torch.load(weights_only=True)`` reads it).

    Args:
        **kwargs: As :class:`mmengine.hooks.EarlyStoppingHook` (``monitor``,
            ``rule``, ``patience``, ``min_delta``...).

    Example:
        >>> custom_hooks = [dict(type='ResumableEarlyStoppingHook',
        ...                      monitor='accuracy/top1', patience=10)]
    """

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[STATE_KEY] = dict(
            monitor=str(self.monitor), rule=str(self.rule),
            wait_count=int(self.wait_count),
            best_score=float(self.best_score))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = (checkpoint.get('meta') or {}).get(STATE_KEY)
        if not is_resuming(runner) or not isinstance(state, dict):
            return  # load_from, or a checkpoint from before this hook
        if (state.get('monitor'), state.get('rule')) != \
                (self.monitor, self.rule):
            runner.logger.info(
                f'ResumableEarlyStoppingHook: the checkpoint watched '
                f'{state.get("monitor")!r} ({state.get("rule")}), this run '
                f'{self.monitor!r} ({self.rule}); patience starts afresh')
            return
        try:
            wait, best = int(state['wait_count']), float(state['best_score'])
        except (KeyError, TypeError, ValueError):
            runner.logger.warning('ResumableEarlyStoppingHook: unreadable '
                                  'state in the checkpoint; patience '
                                  'starts afresh')
            return
        self.wait_count, self.best_score = wait, best
        runner.logger.info(
            f'ResumableEarlyStoppingHook: resumed with best '
            f'{self.monitor} {self.best_score:.4g} and {self.wait_count} '
            f'of {self.patience} validations without improvement')
