"""``AutoClassWeightHook``: ``class_weight='auto'`` from the training split."""
from typing import Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from rock_plugin.utils.errors import DataError


def inverse_frequency_weights(labels: Sequence[int], num_classes: int,
                              class_names: Optional[Sequence[str]] = None
                              ) -> np.ndarray:
    """``(C,)`` class weights ``N / (C * n_c)`` of the training ``labels``
    (sklearn's ``'balanced'``): every class weighs the same in the loss.

    Raises:
        DataError: A class has no training image (named by ``class_names``).
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
    """Before training, give every loss whose ``class_weight`` is ``'auto'``
    :func:`inverse_frequency_weights` of the training split (logged); other
    losses are left alone, so the hook is harmless anywhere."""
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        losses = [m for m in runner.model.modules()  # wrapped or not
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
