"""``DihedralMeanClassifier``: pooled features averaged over the flips and
quarter turns of each image."""
from typing import Optional

import torch
from mmpretrain.registry import MODELS

from .rock_classifier import RockImageClassifier

#: Views averaged: 8 = the 4 quarter turns, each also mirrored; 4 = the
#: mirrors that keep the shape (identity, both flips, half turn); 1 = off.
VIEW_COUNTS = (1, 4, 8)


def _check_views(views: int) -> None:
    if views not in VIEW_COUNTS:
        raise ValueError(f'views must be one of {VIEW_COUNTS}, got {views}')


def dihedral_views(inputs: torch.Tensor, views: int = 8):
    """Yield ``views`` symmetries of an ``(N, C, H, W)`` batch, identity
    first (quarter turns swap H and W).

    Example:
        >>> [v.shape[2:] for v in dihedral_views(torch.rand(1, 3, 4, 6))]
        ... # doctest: +ELLIPSIS
        [torch.Size([4, 6]), torch.Size([4, 6]), torch.Size([6, 4]), ...]
    """
    _check_views(views)
    turns = (0, 1, 2, 3) if views == 8 else (0, 2)
    for k in turns[:max(1, views // 2)]:
        view = torch.rot90(inputs, k, (2, 3)) if k else inputs
        yield view
        if views > 1:
            yield view.flip(3)


@MODELS.register_module()
class DihedralMeanClassifier(RockImageClassifier):
    """A :class:`RockImageClassifier` whose pooled features are the mean
    over the flips and quarter turns of each image.

    A thin section has no "up": its class does not change when the slide
    is turned or mirrored, while a frozen ImageNet backbone's features do.
    Averaging the neck's pooled features (not the scores) over the 8
    symmetries of the square gives one invariant feature per image, for
    training, validation, test, prediction and export alike
    (``configs/rock_quickstart_dihedral.py``; README, "Another lab's thin
    sections"). Costs ``views`` backbone passes per image, so it suits a
    frozen backbone whose features are computed once
    (``FeatureCacheTrainLoop``).

    ``extract_feat(stage='backbone')`` returns the maps of the image as
    given, and so does every stage inside :meth:`backbone_grad`: a class
    activation map explains the upright view.

    Args:
        views (int): 8 (default), 4 or 1 (:data:`VIEW_COUNTS`).
        **kwargs: Passed to :class:`RockImageClassifier`.

    Example:
        >>> model = MODELS.build(dict(
        ...     type='DihedralMeanClassifier', freeze_backbone=True,
        ...     frozen_engine=None, backbone=dict(type='EfficientNetLite',
        ...     weights=None), neck=dict(type='GlobalAveragePooling'),
        ...     head=dict(type='LinearClsHead', num_classes=3,
        ...               in_channels=1280)))
        >>> x = torch.rand(1, 3, 64, 96)
        >>> torch.allclose(model.extract_feat(x)[0],
        ...                model.extract_feat(x.flip(2))[0], atol=1e-5)
        True
    """

    def __init__(self, *args, views: int = 8, **kwargs):
        _check_views(views)
        super().__init__(*args, **kwargs)
        self.views = views

    def extract_feat(self, inputs: torch.Tensor,
                     stage: Optional[str] = 'neck'):
        if stage == 'backbone' or self.views == 1 or self._backbone_grad:
            return super().extract_feat(inputs, stage)
        assert stage in ('neck', 'pre_logits'), \
            f'Invalid output stage "{stage}"'
        total = None
        for view in dihedral_views(inputs, self.views):
            feats = super().extract_feat(view, 'neck')
            total = feats if total is None else tuple(
                a + b for a, b in zip(total, feats))
        feats = tuple(t / self.views for t in total)
        return self.head.pre_logits(feats) if stage == 'pre_logits' \
            else feats
