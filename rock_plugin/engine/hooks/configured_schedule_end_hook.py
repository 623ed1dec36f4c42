"""``ConfiguredScheduleEndHook``: a resumed run ends its LR schedules where
the config says."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from ..mmengine_internals import is_resuming


@HOOKS.register_module()
class ConfiguredScheduleEndHook(Hook):
    """On resume, the configured ``end`` of every parameter scheduler wins
    over the one saved in the checkpoint.

    mmengine restores a scheduler's whole state, ``end`` included, so
    ``--resume`` with a larger ``max_epochs`` (which the configs tie ``end``
    to) would stop the schedule where the first run ended. Loading weights
    (``load_from`` without resume) is left alone.

    Example:
        >>> custom_hooks = [dict(type='ConfiguredScheduleEndHook')]
    """
    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('param_schedulers')
        built = getattr(runner, 'param_schedulers', None)
        if not saved or not built or not is_resuming(runner):
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
