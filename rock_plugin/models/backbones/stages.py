"""A backbone as a chain of stages: freeze the first ones, run them apart.

``RockImageClassifier(frozen_stages=N)`` freezes a prefix of the chain at
build time and runs it without autograd (on the frozen engine), then the
trainable rest with autograd; :class:`StageChain` knows, for each supported
backbone, its modules in forward order and which of their outputs the
backbone returns, so that prefix + rest give exactly its forward.
"""
from typing import List, Sequence, Tuple

import torch
from torch import nn

from .efficientnet_lite import EfficientNetLite


class _Prefix(nn.Module):
    """The first modules of a chain; returns the maps the rest needs."""

    def __init__(self, modules: Sequence[nn.Module], keep: Sequence[int]):
        super().__init__()
        self.stages = nn.ModuleList(modules)
        self.keep = tuple(keep)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.keep:
                outs.append(x)
        return tuple(outs)


class StageChain:
    """The stages of a supported backbone in forward order.

    Stage numbers are the backbone's ``out_indices`` numbers:

    * mmpretrain ``EfficientNet``: ``layers[i]``; 0 is the stem, the last
      (6 for B4) the final 1x1 conv.
    * :class:`EfficientNetLite`: timm ``blocks[i]`` (0-6); the stem is
      stage -1 and the final 1x1 conv (``conv_head``, ``bn2``) stage 7.

    Args:
        backbone (nn.Module): One of the above (its modules are shared, not
            copied).

    Raises:
        TypeError: Another backbone.

    Example:
        >>> chain = StageChain(model.backbone)  # Lite2, out_indices (4,5,6)
        >>> k = chain.prefix_length(5)  # the stem and stages 0-5
        >>> with torch.no_grad():
        ...     maps = chain.prefix(k)(images)
        >>> feats = chain.rest(k, maps)  # == model.backbone(images)
    """

    def __init__(self, backbone: nn.Module):
        from mmpretrain.models.backbones import EfficientNet
        if isinstance(backbone, EfficientNetLite):
            net = backbone.timm_model
            self.modules: List[nn.Module] = [
                nn.Sequential(net.conv_stem, net.bn1), *net.blocks,
                nn.Sequential(net.conv_head, net.bn2)]
            self.numbers = list(range(-1, len(net.blocks) + 1))
            taps = [i + 1 for i in backbone.out_indices]
            self.with_last = True  # (*out_indices maps, last map)
        elif isinstance(backbone, EfficientNet):
            self.modules = list(backbone.layers)
            self.numbers = list(range(len(self.modules)))
            taps = list(backbone.out_indices)
            self.with_last = False
        else:
            raise TypeError(
                'frozen_stages supports EfficientNet (mmpretrain) and '
                f'EfficientNetLite backbones, not {type(backbone).__name__} '
                '(freeze_backbone=True freezes any backbone)')
        self.taps = sorted(set(taps))  # both return maps in forward order

    def __len__(self) -> int:
        return len(self.modules)

    def prefix_length(self, frozen_stages: int) -> int:
        """How many modules the stem and stages ``<= frozen_stages`` are."""
        if not isinstance(frozen_stages, int) or \
                isinstance(frozen_stages, bool) or \
                frozen_stages not in self.numbers:
            raise ValueError(
                f'model.frozen_stages must be an integer from '
                f'{self.numbers[0]} (the stem) to {self.numbers[-1]} (the '
                f'whole backbone), got {frozen_stages!r}')
        return self.numbers.index(frozen_stages) + 1

    def _keep(self, k: int) -> List[int]:
        return sorted({p for p in self.taps if p < k} | {k - 1})

    def prefix(self, k: int) -> nn.Module:
        """The first ``k`` modules as one module returning the maps
        :meth:`rest` needs (a new wrapper of the same modules)."""
        return _Prefix(self.modules[:k], self._keep(k))

    def rest(self, k: int, maps: Sequence[torch.Tensor]) -> tuple:
        """The backbone's output from :meth:`prefix` ``(k)`` 's maps."""
        outs = dict(zip(self._keep(k), maps))
        x = outs[k - 1]
        for pos in range(k, len(self.modules)):
            x = self.modules[pos](x)
            outs[pos] = x
        return tuple(outs[p] for p in self.taps) + \
            ((x, ) if self.with_last else ())
