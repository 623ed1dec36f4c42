"""``RichProgressBarHook``: one bar for a whole training run, with its ETA."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from rock_plugin.utils.progress import ProgressBar


def _loader_length(loop) -> Optional[int]:
    try:
        return len(loop.dataloader)
    except (AttributeError, TypeError):  # a loop without a sized loader
        return None


@HOOKS.register_module()
class RichProgressBarHook(Hook):
    """Progress bars on the terminal: the training run counted in
    iterations (the epoch in its label, the ETA of the whole run; it stays
    drawn at the end), plus a bar for each validation or test loop that is
    removed when the loop ends. Only on rank 0, and only when stderr is a
    terminal and ``CI`` is unset: elsewhere it writes nothing. The
    ``LoggerHook`` lines still appear, above the bars
    (:mod:`rock_plugin.utils.progress`).

    Args:
        enabled (bool, optional): True draws the bars on any stream (a CI
            log), False never. Defaults to None: automatic.

    Example:
        >>> custom_hooks = [dict(type='RichProgressBarHook')]
    """
    # Before the LoggerHook (BELOW_NORMAL): the line it prints redraws the
    # bars with this iteration counted.
    priority = 'NORMAL'

    def __init__(self, enabled: Optional[bool] = None):
        self.enabled = enabled
        self._train: Optional[ProgressBar] = None
        self._eval: Optional[ProgressBar] = None

    def _label(self, runner) -> str:
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return 'train'
        epochs = runner.max_epochs
        return f'train epoch {min(runner.epoch + 1, epochs)}/{epochs}'

    def before_train(self, runner) -> None:
        # A resumed run starts at its iteration; its ETA uses this run's
        # rate only.
        self._train = ProgressBar(
            self._label(runner), total=runner.max_iters,
            completed=runner.iter, transient=False,
            enabled=self._enabled(runner))

    def before_train_epoch(self, runner) -> None:
        if self._train is not None:
            self._train.update(description=self._label(runner))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._train is not None:
            # The loop counts this iteration only after the hooks.
            self._train.update(completed=runner.iter + 1)

    def after_train(self, runner) -> None:
        if self._train is not None:
            self._train.close()
            self._train = None

    def _enabled(self, runner) -> Optional[bool]:
        return self.enabled if runner.rank == 0 else False

    def _open_eval(self, runner, name: str, loop) -> None:
        self._close_eval()
        self._eval = ProgressBar(name, total=_loader_length(loop),
                                 enabled=self._enabled(runner))

    def _close_eval(self) -> None:
        if self._eval is not None:
            self._eval.close()
            self._eval = None

    def _advance(self) -> None:
        if self._eval is not None:
            self._eval.update(advance=1)

    def before_val(self, runner) -> None:
        self._open_eval(runner, 'val', runner.val_loop)

    def before_test(self, runner) -> None:
        self._open_eval(runner, 'test', runner.test_loop)

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self._advance()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self._advance()

    def after_val(self, runner) -> None:
        self._close_eval()

    def after_test(self, runner) -> None:
        self._close_eval()

    def after_run(self, runner) -> None:
        self._close_eval()
        self.after_train(runner)
