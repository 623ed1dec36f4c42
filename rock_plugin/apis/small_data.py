"""Config edits for small and imbalanced data (train's ``--patience``,
``--class-weight auto``, ``--balanced-sampler``): each changes ``cfg`` in
place and returns it; its example is the same setting in a config."""
from typing import Optional

from mmengine.config import Config

_EARLY_STOPPING = ('EarlyStoppingHook', 'mmengine.EarlyStoppingHook',
                   'ResumableEarlyStoppingHook',
                   'mmpretrain.ResumableEarlyStoppingHook')


def set_early_stopping(cfg: Config, patience: int) -> Config:
    """Stop after ``patience`` (>= 1) validations without improvement:
    ``ResumableEarlyStoppingHook`` (mmengine's ``EarlyStoppingHook`` whose
    count survives ``--resume``) on the checkpoint hook's ``save_best``
    metric and rule (default ``accuracy/top1``, greater). An early stopping
    hook already in the config gets the new patience; a plain
    ``EarlyStoppingHook`` becomes the resumable one, its settings kept.

    Example:
        >>> custom_hooks = [dict(type='ResumableEarlyStoppingHook',
        ...                      monitor='accuracy/top1', patience=10)]
    """
    if patience < 1:
        raise ValueError(f'--patience must be at least 1, got {patience}')
    if not cfg.get('val_dataloader') or not cfg.get('val_cfg'):
        raise ValueError('--patience stops on the validation metric, but '
                         'validation is off (--no-validate)')
    ckpt = cfg.get('default_hooks', {}).get('checkpoint') or {}
    monitor = ckpt.get('save_best')
    if not isinstance(monitor, str) or monitor == 'auto':
        monitor = 'accuracy/top1'
    rule = ckpt.get('rule') if isinstance(ckpt.get('rule'), str) else None
    hooks = list(cfg.get('custom_hooks') or [])
    for hook in hooks:
        kind = hook.get('type')
        if getattr(kind, '__name__', kind) in _EARLY_STOPPING:  # or a class
            hook['type'] = 'ResumableEarlyStoppingHook'
            hook['patience'] = patience
            break
    else:
        hooks.append(dict(type='ResumableEarlyStoppingHook', monitor=monitor,
                          rule=rule or 'greater', patience=patience))
    cfg.custom_hooks = hooks
    return cfg


def set_class_weight(cfg: Config, class_weight: Optional[str]) -> Config:
    """``'auto'``: the loss weighs each class by its inverse frequency in
    the training split (``AutoClassWeightHook`` computes them at the start);
    None changes nothing.

    Example:
        >>> model = dict(head=dict(loss=dict(type='CrossEntropyLoss',
        ...                                  class_weight='auto')))
        >>> custom_hooks = [..., dict(type='AutoClassWeightHook')]
    """
    if class_weight is None:
        return cfg
    if class_weight != 'auto':
        raise ValueError(f"--class-weight: only 'auto' is known, got "
                         f'{class_weight!r}')
    loss = cfg.model.get('head', {}).get('loss')
    if loss is None:
        raise ValueError('--class-weight auto: the model has no '
                         'model.head.loss to weight')
    loss['class_weight'] = 'auto'
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'AutoClassWeightHook' for h in hooks):
        hooks.append(dict(type='AutoClassWeightHook'))
    cfg.custom_hooks = hooks
    return cfg


def set_balanced_sampler(cfg: Config) -> Config:
    """Draw every class about equally often (``ClassBalancedSampler``),
    inside the config's ``EpochSeededSampler`` if any (seeded augmentation).

    Example:
        >>> train_dataloader = dict(sampler=dict(
        ...     type='EpochSeededSampler',
        ...     sampler=dict(type='ClassBalancedSampler')))
    """
    loader = cfg.train_dataloader
    balanced = dict(type='ClassBalancedSampler')
    if (loader.get('sampler') or {}).get('type') == 'EpochSeededSampler':
        balanced = dict(type='EpochSeededSampler', sampler=balanced)
    loader.sampler = balanced
    return cfg
