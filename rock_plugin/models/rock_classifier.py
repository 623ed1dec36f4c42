"""``RockImageClassifier``: an ``ImageClassifier`` that can freeze its backbone."""
from itertools import chain
from typing import Optional

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

from .frozen_fastpath import build_fast_frozen_copy, is_tracing


@MODELS.register_module()
class RockImageClassifier(ImageClassifier):
    """``ImageClassifier`` with the original's ``freeze_layers=('backbone',)``.

    The freeze happens when the model is built, not in ``train()``: mmpretrain's
    ``EfficientNet`` applies ``frozen_stages`` only in ``train()``, after DDP has
    wrapped the model and registered every parameter, so DDP then fails with
    "Expected to have finished reduction". A frozen backbone also stays in
    eval mode (BN statistics frozen) and runs without autograd, so only the
    neck/head build a graph.

    Fast path (``fast_frozen``, on by default): a frozen backbone is a fixed
    function, so its forward runs a fused copy of it (BN folded into the
    convolutions, static "same" padding, fused SiLU, ``channels_last``; see
    :mod:`rock_plugin.models.frozen_fastpath`). Same maths, outputs equal to
    float rounding (~1e-6 relative); the backbone module itself, its
    ``state_dict`` and checkpoints are unchanged. The copy is rebuilt when any
    backbone tensor is replaced, moved or modified in place (its version
    counter), and skipped under tracing/export (ONNX, TorchScript,
    ``torch.compile``). Call :meth:`reset_fast_path` after writing weights
    through ``.data``, which bypasses version counters.

    Args:
        freeze_backbone (bool): Freeze every backbone parameter and its BN
            statistics. Defaults to False.
        fast_frozen (bool): Use the fused copy for a frozen backbone.
            Defaults to True; False runs the plain backbone (the reference).
        channels_last (bool): Run the fused copy NHWC. Defaults to True.
        **kwargs: Passed to :class:`mmpretrain.models.ImageClassifier`.

    Example:
        >>> model = dict(type='RockImageClassifier', freeze_backbone=True,
        ...              backbone=dict(type='EfficientNet', arch='b4'), ...)
    """

    def __init__(self, *args, freeze_backbone: bool = False,
                 fast_frozen: bool = True, channels_last: bool = True,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.freeze_backbone = freeze_backbone
        self.fast_frozen = fast_frozen
        self.channels_last = channels_last
        self._fast_state = None  # (key, fused copy); not a submodule
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
                fast = self.fast_backbone(inputs)
                if fast is None:
                    return self.backbone(inputs)
                if self.channels_last and inputs.dim() == 4:
                    inputs = inputs.contiguous(
                        memory_format=torch.channels_last)
                return fast(inputs)
        return self.backbone(inputs)

    # -- fast path -------------------------------------------------------------
    def _backbone_key(self, inputs: torch.Tensor) -> tuple:
        tensors = chain(self.backbone.parameters(), self.backbone.buffers())
        return (inputs.device, self.channels_last) + tuple(
            (id(t), t.data_ptr(), t._version, t.dtype, t.device)
            for t in tensors)

    def fast_backbone(self, inputs: torch.Tensor):
        """The fused copy of the frozen backbone for ``inputs``, or None when
        the plain backbone must run (fast path off, not frozen, backbone put
        in train mode, or a tracer/exporter at work)."""
        if not (self.freeze_backbone and self.fast_frozen) or \
                self.backbone.training or is_tracing(inputs):
            return None
        try:
            key = self._backbone_key(inputs)
        except (RuntimeError, NotImplementedError):  # storage-less tensors
            return None
        state = self._fast_state
        if state is None or state[0] != key:
            self._fast_state = None  # free the old copy first
            fast, _ = build_fast_frozen_copy(self.backbone,
                                             channels_last=self.channels_last)
            state = self._fast_state = (key, fast.to(inputs.device))
        return state[1]

    def reset_fast_path(self) -> None:
        """Drop the fused copy; the next forward rebuilds it from the
        backbone's current weights."""
        self._fast_state = None

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
