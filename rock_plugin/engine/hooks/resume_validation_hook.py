"""``ResumeValidationHook``: validate the resumed epoch first."""
from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def validates_after(runner, epoch: Optional[int] = None) -> bool:
    """Whether ``EpochBasedTrainLoop.run`` validates after ``epoch``
    (1-based; default the one now ending)."""
    loop = runner.train_loop
    if runner.val_loop is None:
        return False
    epoch = runner.epoch + 1 if epoch is None else epoch
    return (epoch >= loop.val_begin
            and (epoch % loop.val_interval == 0 or epoch == loop.max_epochs))


@HOOKS.register_module()
class ResumeValidationHook(Hook):
    """On ``--resume``, validate the checkpoint's epoch before training on.

    ``epoch_N.pth`` is written before epoch N is validated, so a run killed
    during that validation loses it (history row, best checkpoint, early
    stopping); validating first repeats what the uninterrupted run did.
    """
    priority = 'LOWEST'  # every other hook has set up by then

    def before_train(self, runner) -> None:
        if runner.epoch == 0 or not validates_after(runner, runner.epoch):
            return  # a fresh run (or load_from), or no validation was due
        runner.logger.info(f'ResumeValidationHook: validating the resumed '
                           f'epoch {runner.epoch} (its checkpoint was saved '
                           'before its validation)')
        runner.val_loop.run()
