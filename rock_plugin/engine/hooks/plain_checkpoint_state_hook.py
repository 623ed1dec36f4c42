"""``PlainCheckpointStateHook``: checkpoints that load with
``weights_only=True``."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.utils.checkpoint_io import from_plain, to_plain


@HOOKS.register_module()
class PlainCheckpointStateHook(Hook):
    """Save mmengine's ``HistoryBuffer`` and numpy values, which
    ``torch.load(weights_only=True)`` refuses, as plain types and restore
    them on load, so checkpoints need no extra allowlist.

    Runs last on save (``VERY_LOW``), after every other hook added its
    state. ``state_dict`` and ``optimizer`` (tensors) are left as they are.

    Example:
        >>> custom_hooks = [dict(type='PlainCheckpointStateHook')]
    """
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
