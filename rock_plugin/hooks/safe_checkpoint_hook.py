"""``SafeCheckpointHook``: checkpoints that load with ``weights_only=True``."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from rock_plugin.utils.checkpoint_io import from_plain, to_plain


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Write checkpoints that load with ``weights_only=True`` and no extra
    allowlist; restore them after loading.

    mmengine's checkpoints hold ``HistoryBuffer`` objects (and numpy values)
    that torch>=2.6's ``weights_only=True`` refuses, and allowing them needs
    ``builtins.getattr``, which lets a pickle call any method.
    ``before_save_checkpoint`` rewrites them into plain types before
    ``torch.save``; ``after_load_checkpoint`` undoes that right after loading,
    before the runner restores the message hub. On resume, the configured
    ``end`` of every LR scheduler wins over the saved one, so a run resumed
    with more epochs keeps its schedule.

    Example:
        >>> custom_hooks = [dict(type='SafeCheckpointHook')]
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = from_plain(checkpoint[key])
        self._keep_configured_schedule_end(runner, checkpoint)

    @staticmethod
    def _keep_configured_schedule_end(runner, checkpoint: dict) -> None:
        saved = checkpoint.get('param_schedulers')
        built = getattr(runner, 'param_schedulers', None)
        if not saved or not built or not getattr(runner, '_resume', False):
            return
        if isinstance(built, dict):  # {optimizer name: [schedulers]}
            pairs = [(s, b) for name in built
                     for s, b in zip(saved.get(name, []), built[name])]
        else:
            pairs = list(zip(saved, built))
        for state, scheduler in pairs:
            if isinstance(state, dict) and 'end' in state and \
                    state['end'] != scheduler.end:
                print_log(f'resume: {type(scheduler).__name__} end '
                          f'{state["end"]} -> {scheduler.end} (from the '
                          'config)', logger='current')
                state['end'] = scheduler.end
