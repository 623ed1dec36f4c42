"""``RockImageClassifier``: an ``ImageClassifier`` that can freeze its backbone."""
from typing import Optional

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS


@MODELS.register_module()
class RockImageClassifier(ImageClassifier):
    """``ImageClassifier`` with the original's ``freeze_layers=('backbone',)``.

    The freeze happens when the model is built, not in ``train()``: mmpretrain's
    ``EfficientNet`` applies ``frozen_stages`` only in ``train()``, after DDP has
    wrapped the model and registered every parameter, so DDP then fails with
    "Expected to have finished reduction". A frozen backbone also stays in
    eval mode (BN statistics frozen) and runs without autograd, so only the
    neck/head build a graph.

    Args:
        freeze_backbone (bool): Freeze every backbone parameter and its BN
            statistics. Defaults to False.
        **kwargs: Passed to :class:`mmpretrain.models.ImageClassifier`.

    Example:
        >>> model = dict(type='RockImageClassifier', freeze_backbone=True,
        ...              backbone=dict(type='EfficientNet', arch='b4'), ...)
    """

    def __init__(self, *args, freeze_backbone: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for param in self.backbone.parameters():
                param.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def backbone_features(self, inputs: torch.Tensor):
        """Backbone output; without autograd when the backbone is frozen."""
        if self.freeze_backbone:
            with torch.no_grad():
                return self.backbone(inputs)
        return self.backbone(inputs)

    def extract_feat(self, inputs: torch.Tensor, stage: Optional[str] = 'neck'):
        assert stage in ('backbone', 'neck', 'pre_logits'), \
            f'Invalid output stage "{stage}"'
        x = self.backbone_features(inputs)
        if stage == 'backbone':
            return x
        if self.with_neck:
            x = self.neck(x)
        if stage == 'neck':
            return x
        assert self.with_head and hasattr(self.head, 'pre_logits'), \
            "No head or the head doesn't implement `pre_logits` method."
        return self.head.pre_logits(x)
