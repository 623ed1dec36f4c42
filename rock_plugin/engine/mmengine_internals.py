"""Every private mmengine name, and every undocumented mmengine behaviour,
that rock_plugin relies on: here and nowhere else.

The plugin extends mmengine through its public points (hooks, ``super()``
then post-processing). Where mmengine 0.10.x offers none, the access lives in
this module with the reason beside it, and
``tests/test_engine/test_mmengine_internals.py`` checks each against the
installed mmengine, naming the attribute when an upgrade changes it.

What stays elsewhere, public but worth knowing:

* :class:`~rock_plugin.engine.hooks.AtomicCheckpointHook` sets mmengine's
  public ``file_backend`` attribute through a property (removals only inside
  ``out_dir``) and relies on ``CheckpointHook`` removing files only through
  it.
* :class:`~rock_plugin.engine.runners.CachedFeatureValLoop` re-implements the
  public ``ValLoop.run``: its cache must replace the dataloader pass, and
  ``ValLoop.run`` offers no point between the ``before_val_epoch`` hooks and
  the metrics. Swapping ``self.dataloader`` and overriding ``run_iter``
  instead would leak into hooks that run the loop themselves (mmpretrain's
  ``EMAHook(evaluate_on_origin=True)`` iterates ``val_loop.dataloader`` with
  ``val_loop.run_iter`` inside ``after_val_epoch``). The test pins
  ``ValLoop.run`` so a change in it is seen.
* ``rock_plugin/utils/checkpoint_io.py`` (a lower layer, which must not
  import the engine) reads ``HistoryBuffer._log_history`` /
  ``_count_history`` / ``_statistics_methods`` and swaps
  ``CheckpointLoader._schemes``; the test checks those too.
"""
import os.path as osp
import shutil
import tempfile
from typing import Any, Callable, Optional

from mmengine.runner import BaseLoop, Runner
# mmengine has no public way to fold a validation's per-batch losses into
# the ``val_loss`` metrics; CachedFeatureValLoop does it as ValLoop does.
from mmengine.runner.loops import _parse_losses as parse_losses  # noqa: F401
from mmengine.runner.loops import _update_losses as update_losses  # noqa

#: The file ``CheckpointHook`` names the latest checkpoint in.
POINTER = 'last_checkpoint'


def is_resuming(runner) -> bool:
    """Whether ``runner`` resumes training (``resume=True``) rather than
    only loading weights (``load_from``).

    Hooks' ``after_load_checkpoint`` must tell the two apart (RNG state,
    history, schedule ends are restored only on resume); mmengine keeps it
    only in ``Runner._resume``.

    Args:
        runner: The runner (or a stand-in object with ``_resume``).

    Returns:
        bool: True on resume.

    Example:
        >>> is_resuming(runner)
        False
    """
    if isinstance(runner, Runner):
        return bool(runner._resume)  # an AttributeError names a rename
    return bool(getattr(runner, '_resume', False))


def checkpoint_to_load(runner) -> Optional[str]:
    """The checkpoint the runner was given (``load_from``), or None.

    ``Runner.load_or_resume`` reads it from ``Runner._load_from``; nothing
    public exposes it.
    """
    return runner._load_from


def set_checkpoint_to_load(runner, filename: Optional[str]) -> None:
    """Make ``Runner.load_or_resume`` load or resume from ``filename``.

    The one way to choose the file of ``resume=True`` without ``load_from``
    while keeping mmengine's own ``load_or_resume``: it would otherwise
    trust ``last_checkpoint`` (see
    :meth:`~rock_plugin.engine.runners.SafeLoadingRunner.load_or_resume`).
    """
    runner._load_from = filename


def has_loaded(runner) -> bool:
    """Whether the runner already loaded or resumed its checkpoint
    (``Runner._has_loaded``, which ``load_or_resume`` checks first)."""
    return bool(runner._has_loaded)


def train_loop_is_built(runner) -> bool:
    """Whether the runner has a training loop (it is training), without
    building one.

    ``Runner.train_loop`` builds the loop from its config on first access
    (datasets and all) and raises when there is none, so a stand-alone
    validation (``tools/test.py``) is told apart by ``Runner._train_loop``:
    None or still a config dict.
    """
    loop = runner._train_loop
    return loop is not None and not isinstance(loop, dict)


def count_epoch(loop: BaseLoop) -> None:
    """Count one finished epoch of a loop that overrides ``run_epoch``.

    ``EpochBasedTrainLoop.epoch`` is a read-only view of ``_epoch``, which
    its own ``run_epoch`` increments; an override must do the same.
    """
    loop._epoch += 1


def count_iter(loop: BaseLoop) -> None:
    """Count one finished iteration (``_iter``, as :func:`count_epoch`)."""
    loop._iter += 1


class _ScratchWorkDirRunner:
    """The runner, except that ``work_dir`` is a scratch folder inside it,
    made on first use."""

    def __init__(self, runner):
        self._runner = runner
        self.scratch: Optional[str] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__['_runner'], name)

    @property
    def work_dir(self) -> str:
        if self.scratch is None:
            self.scratch = tempfile.mkdtemp(
                prefix=f'.{POINTER}.', dir=self._runner.work_dir)
        return self.scratch


def capture_checkpoint_pointer(method: Callable, runner, *args,
                               **kwargs) -> Optional[str]:
    """Call a ``CheckpointHook`` method and return the ``last_checkpoint``
    text it wrote, which instead of ``work_dir`` went to a scratch folder.

    mmengine 0.10.x writes the pointer with a plain ``open(path, 'w')`` into
    ``runner.work_dir`` at the end of the private
    ``CheckpointHook._save_checkpoint_with_step``: a kill between the
    truncation and the write leaves it empty. Called with a view of the
    runner whose ``work_dir`` is a scratch folder (everything else is the
    runner's), mmengine's code runs unchanged and the caller writes the
    returned text into place atomically. Nobody reads the scratch copy.

    Args:
        method (Callable): A bound public method of the hook (e.g.
            ``super().after_train_epoch``).
        runner: The runner, passed to ``method`` as the view.
        *args, **kwargs: The method's other arguments.

    Returns:
        str, optional: The pointer text, or None when nothing was saved.

    Example:
        >>> text = capture_checkpoint_pointer(super().after_train_epoch,
        ...                                   runner)
    """
    view = _ScratchWorkDirRunner(runner)
    try:
        method(view, *args, **kwargs)
        path = osp.join(view.scratch or '', POINTER)
        if view.scratch is None or not osp.isfile(path):
            return None
        with open(path) as f:  # as mmengine wrote it
            return f.read()
    finally:
        if view.scratch is not None:
            shutil.rmtree(view.scratch, ignore_errors=True)
