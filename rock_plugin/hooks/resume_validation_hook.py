"""``ResumeValidationHook``: validate the resumed epoch, as the run would have."""
from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def validates_after(runner, epoch: Optional[int] = None) -> bool:
    """Whether ``EpochBasedTrainLoop.run`` validates after ``epoch``.

    Args:
        runner: The runner.
        epoch (int, optional): 1-based epoch; default the epoch now ending
            (the loop advances its counter after ``after_train_epoch``).

    Returns:
        bool: Its condition, read from the train loop.
    """
    loop = runner.train_loop
    if runner.val_loop is None:
        return False
    if epoch is None:
        epoch = runner.epoch + 1
    return (epoch >= loop.val_begin
            and (epoch % loop.val_interval == 0 or epoch == loop.max_epochs))


@HOOKS.register_module()
class ResumeValidationHook(Hook):
    """On ``--resume``, validate the checkpoint's epoch before training on.

    mmengine writes ``epoch_N.pth`` in ``after_train_epoch``, before epoch N
    is validated. A run killed during that validation loses it: its history
    row, its chance to be the best checkpoint, early stopping's count. The
    resumed run starts from the state saved *before* that validation, so
    validating first repeats what the uninterrupted run did next (same
    model, same numbers, random generators advanced the same way).

    It runs in ``before_train`` with the lowest priority: after every other
    hook has set up (``CheckpointHook`` its file backend, the history hook
    its pending row), before the first resumed epoch starts.

    Example:
        >>> custom_hooks = [dict(type='ResumeValidationHook')]
    """
    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        if runner.epoch == 0 or not validates_after(runner, runner.epoch):
            return  # a fresh run (or load_from), or no validation was due
        runner.logger.info(f'ResumeValidationHook: validating the resumed '
                           f'epoch {runner.epoch} (its checkpoint was saved '
                           'before its validation)')
        runner.val_loop.run()
