"""``SafeCheckpointHook``: checkpoints that load with ``weights_only=True``."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from rock_plugin.utils.checkpoint_io import from_plain, to_plain


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Save mmengine's ``HistoryBuffer`` and numpy values, which
    ``weights_only=True`` refuses, as plain types and restore them on load,
    so checkpoints need no extra allowlist. On resume, the configured ``end``
    of every LR scheduler wins over the saved one."""
    priority = 'VERY_LOW'

    @staticmethod
    def _convert(checkpoint: dict, convert) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = convert(checkpoint[key])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self._convert(checkpoint, to_plain)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._convert(checkpoint, from_plain)
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
