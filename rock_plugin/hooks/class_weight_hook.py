"""``AutoClassWeightHook``: ``class_weight='auto'`` from the training split."""
from typing import Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from rock_plugin.utils.errors import DataError


def inverse_frequency_weights(labels: Sequence[int], num_classes: int,
                              class_names: Optional[Sequence[str]] = None
                              ) -> np.ndarray:
    """Class weights ``N / (C * n_c)``: inverse class frequency, mean 1.

    sklearn's ``compute_class_weight('balanced')``: every class then carries
    the same total weight in the loss, and a balanced set gets all ones.

    Args:
        labels (Sequence[int]): Training labels.
        num_classes (int): ``C``.
        class_names (Sequence[str], optional): For the error message.

    Returns:
        np.ndarray: ``(C,)`` weights.

    Raises:
        DataError: A class has no training image (its weight is undefined).

    Example:
        >>> inverse_frequency_weights([0, 0, 0, 1], 2).tolist()
        [0.6666666666666666, 2.0]
    """
    from sklearn.utils.class_weight import compute_class_weight
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = [class_names[c] if class_names else str(c)
                   for c in np.flatnonzero(counts == 0)]
        raise DataError(f"class_weight='auto': no training image of class(es) "
                        f'{missing}; their weight would be infinite')
    return compute_class_weight('balanced', classes=np.arange(num_classes),
                                y=labels)


@HOOKS.register_module()
class AutoClassWeightHook(Hook):
    """Turn ``class_weight='auto'`` in the model's losses into numbers.

    Before training, every loss module whose ``class_weight`` is ``'auto'``
    (e.g. ``model.head.loss=dict(type='CrossEntropyLoss',
    class_weight='auto')``) gets :func:`inverse_frequency_weights` of the
    training dataloader's labels, which are logged with the class names. The
    weights follow the training split (a cross-validation fold, a
    ``--split-validation`` part), never the validation data. Losses with
    other weights are left alone, so the hook is harmless in any config.

    Example:
        >>> custom_hooks = [dict(type='AutoClassWeightHook')]
        >>> # python tools/train.py CONFIG --class-weight auto
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        losses = [m for m in model.modules()
                  if isinstance(getattr(m, 'class_weight', None), str)]
        if not losses:
            return
        for module in losses:
            if module.class_weight != 'auto':
                raise ValueError(f"class_weight must be 'auto' or a list of "
                                 f'numbers, got {module.class_weight!r}')
        dataset = runner.train_dataloader.dataset
        names = list(dataset.metainfo.get('classes') or [])
        labels = np.asarray(dataset.get_gt_labels(), dtype=np.int64)
        num_classes = len(names) or int(labels.max()) + 1
        weights = inverse_frequency_weights(labels, num_classes, names)
        for module in losses:
            module.class_weight = weights.tolist()
        counts = np.bincount(labels, minlength=num_classes)
        rows = ', '.join(f'{names[c] if names else c}: {weights[c]:.3f} '
                         f'(n={counts[c]})' for c in range(num_classes))
        print_log(f"class_weight='auto' (inverse frequency of the "
                  f'{len(labels)} training images): {rows}', logger='current')
