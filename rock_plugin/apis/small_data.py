"""Controls for small and imbalanced data sets, as config edits.

``tools/train.py`` (and ``tools/cross_validate.py``) apply them for
``--patience N``, ``--class-weight auto`` and ``--balanced-sampler``; a
config can say the same directly (see each function).
"""
from typing import Optional

from mmengine.config import Config

__all__ = ['set_early_stopping', 'set_class_weight', 'set_balanced_sampler']


def set_early_stopping(cfg: Config, patience: int) -> Config:
    """Stop when the selection metric has not improved for ``patience``
    validations: mmengine's ``EarlyStoppingHook`` on the checkpoint hook's
    ``save_best`` metric and rule (``accuracy/top1``, greater).

    An ``EarlyStoppingHook`` already in ``custom_hooks`` gets the new
    patience. The best checkpoint stays the one to use.

    Args:
        cfg (Config): Changed in place.
        patience (int): Validations without improvement, at least 1.

    Returns:
        Config: ``cfg``.

    Example:
        >>> # in a config:
        >>> custom_hooks = [dict(type='EarlyStoppingHook',
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
        if hook.get('type') in ('EarlyStoppingHook',
                                'mmengine.EarlyStoppingHook'):
            hook['patience'] = patience
            break
    else:
        hooks.append(dict(type='EarlyStoppingHook', monitor=monitor,
                          rule=rule or 'greater', patience=patience))
    cfg.custom_hooks = hooks
    return cfg


def set_class_weight(cfg: Config, class_weight: Optional[str]) -> Config:
    """``class_weight='auto'``: the head's loss weighs each class by its
    inverse frequency in the training split (``AutoClassWeightHook``
    computes and logs the weights when training starts).

    Args:
        cfg (Config): Changed in place.
        class_weight (str, optional): ``'auto'``; None changes nothing.

    Returns:
        Config: ``cfg``.

    Example:
        >>> # in a config:
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
    """Draw training images so that every class is seen about equally often
    (``ClassBalancedSampler``); inside an ``EpochSeededSampler`` when the
    config has one, so augmentation stays seeded per sample.

    Args:
        cfg (Config): Changed in place.

    Returns:
        Config: ``cfg``.

    Example:
        >>> # in a config:
        >>> train_dataloader = dict(sampler=dict(
        ...     type='EpochSeededSampler',
        ...     sampler=dict(type='ClassBalancedSampler')))
    """
    loader = cfg.train_dataloader
    sampler = dict(loader.get('sampler') or {})
    balanced = dict(type='ClassBalancedSampler')
    if sampler.get('type') == 'EpochSeededSampler':
        loader.sampler = dict(type='EpochSeededSampler', sampler=balanced)
    else:
        loader.sampler = balanced
    return cfg
