"""``OpenSetMLPClsHead``: :class:`OpenSetLinearClsHead` behind one hidden
layer."""
from typing import Tuple

import torch
from mmpretrain.models.heads.stacked_head import LinearBlock
from mmpretrain.registry import MODELS

from .open_set_head import OpenSetLinearClsHead


@MODELS.register_module()
class OpenSetMLPClsHead(OpenSetLinearClsHead):
    """An :class:`OpenSetLinearClsHead` on a hidden layer: mmpretrain's
    ``StackedLinearClsHead`` block (Linear -> BN -> ReLU -> Dropout) maps
    the pooled features to ``mid_channels``, the linear classifier reads
    those. Calibration, novelty and neighbours work as in the linear head,
    on the hidden features (the bank stores them; ``pre_logits`` returns
    them).

    A frozen ImageNet backbone's pooled features are not linearly
    separable on every rock (``configs/rock_quickstart_dihedral.py``;
    README, "Another lab's thin sections"). ``StackedLinearClsHead`` itself
    has no calibration or "unknown" answer, hence this head.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Length of the pooled features.
        mid_channels (int): Hidden units. Defaults to 512.
        dropout_rate (float): Dropout after the hidden layer. Defaults to
            0.2.
        **kwargs: Passed to :class:`OpenSetLinearClsHead`.

    Example:
        >>> head = MODELS.build(dict(type='OpenSetMLPClsHead', num_classes=3,
        ...                          in_channels=8, mid_channels=4))
        >>> head.pre_logits((torch.rand(2, 8), )).shape
        torch.Size([2, 4])
        >>> head.predict((torch.rand(2, 8), ))[0].pred_score.shape
        torch.Size([3])
    """

    def __init__(self, num_classes: int, in_channels: int,
                 mid_channels: int = 512, dropout_rate: float = 0.2,
                 **kwargs):
        if mid_channels < 1:
            raise ValueError(f'mid_channels must be at least 1, got '
                             f'{mid_channels}')
        super().__init__(num_classes, mid_channels, **kwargs)
        self.feat_channels = in_channels
        self.mid_channels = mid_channels
        self.hidden = LinearBlock(in_channels, mid_channels, dropout_rate,
                                  norm_cfg=dict(type='BN1d'),
                                  act_cfg=dict(type='ReLU'))

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The hidden layer's output for the last of ``feats``."""
        return self.hidden(feats[-1])
