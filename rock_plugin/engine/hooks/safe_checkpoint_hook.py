"""``SafeCheckpointHook``: the earlier hook that did two jobs, kept so that
saved configs of earlier runs still build."""
from mmpretrain.registry import HOOKS

from .configured_schedule_end_hook import ConfiguredScheduleEndHook
from .plain_checkpoint_state_hook import PlainCheckpointStateHook


@HOOKS.register_module()
class SafeCheckpointHook(PlainCheckpointStateHook, ConfiguredScheduleEndHook):
    """Deprecated: :class:`PlainCheckpointStateHook` and
    :class:`ConfiguredScheduleEndHook` in one hook, as configs written
    before the split name it. New configs list the two.

    Example:
        >>> custom_hooks = [dict(type='PlainCheckpointStateHook'),
        ...                 dict(type='ConfiguredScheduleEndHook')]
    """
    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # plain types restored first, as the single hook did
        PlainCheckpointStateHook.after_load_checkpoint(
            self, runner, checkpoint)
        ConfiguredScheduleEndHook.after_load_checkpoint(
            self, runner, checkpoint)
