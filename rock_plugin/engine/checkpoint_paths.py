"""Checkpoint paths that a resumed run restores from its checkpoint (the
message hub's ``best_ckpt*`` and ``last_ckpt``), kept inside the run's own
folder: ``AtomicCheckpointHook`` removes old files through them."""
from typing import Callable

from rock_plugin.utils.paths import resolve_in_dir


def adopt_restored_paths(hook, runner) -> None:
    """Point every checkpoint path restored into ``runner.message_hub``
    that lies outside ``hook.out_dir`` (a copied or moved work dir) at the
    file of the same name in ``hook.out_dir``, or forget it when there is
    none (the next best is then saved there; nothing outside is removed).
    One log line says which.

    Args:
        hook (mmengine.hooks.CheckpointHook): After its ``before_train``
            (``out_dir`` and ``file_backend`` set); its ``best_ckpt_path``
            (``best_ckpt_path_dict`` with several keys) follow.
        runner (mmengine.runner.Runner): The resumed runner.

    Example:
        >>> # AtomicCheckpointHook.before_train
        >>> super().before_train(runner)
        >>> adopt_restored_paths(self, runner)
    """
    hub, out_dir = runner.message_hub, str(hook.out_dir)
    if hook.save_best is None:
        keys = {}
    elif len(hook.key_indicators) == 1:
        keys = {'best_ckpt': None}
    else:
        keys = {f'best_ckpt_{k}': k for k in hook.key_indicators}
    moved, forgotten = [], []
    for hub_key in [*keys, 'last_ckpt']:
        path = hub.get_info(hub_key)
        own = resolve_in_dir(path, out_dir, exists=hook.file_backend.exists)
        if own == path:
            continue
        (moved if own else forgotten).append(str(path))
        if own:
            hub.update_info(hub_key, own)
        else:
            hub.pop_info(hub_key)
        if hub_key == 'best_ckpt':
            hook.best_ckpt_path = own
        elif hub_key in keys:
            hook.best_ckpt_path_dict[keys[hub_key]] = own
    if moved:
        runner.logger.info(
            f'resume: {", ".join(moved)} (from the checkpoint) lie outside '
            f'{out_dir}; using the files of the same name here')
    if forgotten:
        runner.logger.info(
            f'resume: {", ".join(forgotten)} (from the checkpoint) lie '
            f'outside {out_dir} and have no file of the same name here: '
            'forgotten (a new best is saved here; nothing outside is '
            'touched)')


def forget_best_outside(hook, owns: Callable[[str], bool]) -> None:
    """Forget the hook's best checkpoint paths that ``owns`` refuses, so
    that mmengine neither removes nor logs them as removed when a new best
    comes.

    Args:
        hook (mmengine.hooks.CheckpointHook): Its ``best_ckpt_path`` and
            ``best_ckpt_path_dict`` are changed in place.
        owns (callable): Whether the run may remove a path (warns if not).

    Example:
        >>> forget_best_outside(hook, hook.owns)  # before after_val_epoch
    """
    if getattr(hook, 'best_ckpt_path', None) and \
            not owns(hook.best_ckpt_path):
        hook.best_ckpt_path = None
    for key, path in getattr(hook, 'best_ckpt_path_dict', {}).items():
        if path and not owns(path):
            hook.best_ckpt_path_dict[key] = None
