"""A fused inference copy of a frozen backbone: the same maths, less work.

A frozen backbone (parameters fixed, BatchNorm in eval mode, no autograd) is
a fixed function, so it can be rewritten into a cheaper but mathematically
identical one. :func:`build_fast_frozen_copy` deep-copies the backbone and

* folds every eval-mode BatchNorm into the convolution before it (mmcv
  ``ConvModule`` with order conv -> norm -> act): ``y = conv(x) * s + t``
  becomes one convolution with weights ``w * s`` and bias ``b * s + t``,
  folded in float64;
* replaces ``Conv2dAdaptivePadding``'s per-call ``F.pad`` (a copy of the whole
  activation) by the convolution's own zero padding where the "same" padding
  is symmetric (every stride-1 convolution with an odd kernel);
* runs mmcv's ``Swish`` (``x * sigmoid(x)``, two passes and a temporary) as
  the fused, in-place ``F.silu``;
* stores weights and activations ``channels_last`` (NHWC), which oneDNN
  (CPU) and cuDNN (tensor cores) run much faster for depthwise convolutions.

The original backbone is untouched (its ``state_dict``, checkpoints and
``requires_grad`` flags stay exactly as built), the copy is not a registered
submodule, and outputs agree with the original to float rounding (about
1e-6 relative). Modules it does not know are copied as they are, so any
backbone works; timm backbones get the ``channels_last`` part.
"""
import copy
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['build_fast_frozen_copy', 'FoldedConvModule', 'is_tracing']


def is_tracing(inputs=None) -> bool:
    """Whether a tracer/exporter/compiler is running (or ``inputs`` is a
    fake/subclass tensor): the fast copy then stays out of the way and the
    plain backbone is traced instead."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    compiler = getattr(torch, 'compiler', None)
    for name in ('is_compiling', 'is_exporting', 'is_dynamo_compiling'):
        check = getattr(compiler, name, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # pragma: no cover - API drift
            pass
    onnx = getattr(torch, 'onnx', None)
    if onnx is not None and getattr(onnx, 'is_in_onnx_export', None) and \
            onnx.is_in_onnx_export():
        return True
    return inputs is not None and isinstance(inputs, torch.Tensor) and \
        type(inputs) is not torch.Tensor


class FoldedConvModule(nn.Module):
    """An eval-mode mmcv ``ConvModule`` (conv -> BN -> act) as one conv + act.

    Args:
        module: The ``ConvModule`` to fold (not modified).
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        conv = module.conv
        weight = conv.weight.detach().double()
        bias = conv.bias.detach().double() if conv.bias is not None else \
            torch.zeros(weight.shape[0], dtype=torch.float64,
                        device=weight.device)
        norm = module.norm if module.with_norm else None
        if norm is not None:
            scale = torch.rsqrt(norm.running_var.detach().double() + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight.detach().double()
            shift = -norm.running_mean.detach().double() * scale
            if norm.bias is not None:
                shift = shift + norm.bias.detach().double()
            weight = weight * scale.view(-1, 1, 1, 1)
            bias = bias * scale + shift
        dtype = conv.weight.dtype
        self.register_buffer('weight', weight.to(dtype))
        self.register_buffer('bias', bias.to(dtype))
        self.stride = tuple(conv.stride)
        self.dilation = tuple(conv.dilation)
        self.groups = conv.groups
        self.dynamic_padding = False
        from mmcv.cnn.bricks.conv2d_adaptive_padding import \
            Conv2dAdaptivePadding
        if isinstance(conv, Conv2dAdaptivePadding):
            totals = [(k - 1) * d for k, d in
                      zip(weight.shape[-2:], self.dilation)]
            if all(s == 1 for s in self.stride) and \
                    all(t % 2 == 0 for t in totals):
                # TF "same" padding of a stride-1, odd-kernel conv is
                # symmetric and independent of the input size.
                self.padding = tuple(t // 2 for t in totals)
            else:
                self.padding = (0, 0)
                self.dynamic_padding = True
        else:
            self.padding = tuple(conv.padding)
        act = module.activate if module.with_activation else None
        from mmcv.cnn.bricks.swish import Swish
        self.silu = isinstance(act, (Swish, nn.SiLU))
        self.act = None if self.silu else act

    @staticmethod
    def can_fold(module: nn.Module) -> bool:
        """Whether ``module`` is a ConvModule this class reproduces exactly."""
        from mmcv.cnn import ConvModule
        if not isinstance(module, ConvModule) or \
                tuple(module.order) != ('conv', 'norm', 'act') or \
                module.with_explicit_padding:
            return False
        conv = module.conv
        if type(conv).forward not in (nn.Conv2d.forward, _adaptive_forward()) \
                or getattr(conv, 'padding_mode', 'zeros') != 'zeros' or \
                isinstance(conv.padding, str):
            return False
        if module.with_norm:
            norm = module.norm
            if not isinstance(norm, _BatchNorm) or norm.training or \
                    norm.running_var is None or norm.running_mean is None:
                return False
        return True

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        # Conv2dAdaptivePadding.forward's padding, for strided convs.
        img_h, img_w = x.shape[-2:]
        kernel_h, kernel_w = self.weight.shape[-2:]
        stride_h, stride_w = self.stride
        pad_h = max((math.ceil(img_h / stride_h) - 1) * stride_h +
                    (kernel_h - 1) * self.dilation[0] + 1 - img_h, 0)
        pad_w = max((math.ceil(img_w / stride_w) - 1) * stride_w +
                    (kernel_w - 1) * self.dilation[1] + 1 - img_w, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2,
                          pad_h // 2, pad_h - pad_h // 2])
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_padding:
            x = self._pad(x)
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                     self.dilation, self.groups)
        if self.silu:
            return F.silu(x, inplace=True)
        return self.act(x) if self.act is not None else x

    def extra_repr(self) -> str:
        return (f'{tuple(self.weight.shape)}, stride={self.stride}, '
                f'padding={"same(dynamic)" if self.dynamic_padding else self.padding}, '
                f'groups={self.groups}, act={"silu" if self.silu else self.act}')


def _adaptive_forward():
    from mmcv.cnn.bricks.conv2d_adaptive_padding import \
        Conv2dAdaptivePadding
    return Conv2dAdaptivePadding.forward


def _fold(module: nn.Module) -> int:
    count = 0
    for name, child in list(module.named_children()):
        if FoldedConvModule.can_fold(child):
            setattr(module, name, FoldedConvModule(child))
            count += 1
        else:
            count += _fold(child)
    return count


def build_fast_frozen_copy(backbone: nn.Module, channels_last: bool = True
                           ) -> Tuple[nn.Module, int]:
    """A fused, eval-mode, autograd-free copy of a frozen ``backbone``.

    Args:
        backbone (nn.Module): The frozen backbone, in eval mode.
        channels_last (bool): Store the copy NHWC. Defaults to True.

    Returns:
        tuple[nn.Module, int]: The copy and how many conv(+BN)(+act) modules
        were folded.

    Example:
        >>> fast, folded = build_fast_frozen_copy(model.backbone)
        >>> with torch.no_grad():
        ...     out = fast(x.contiguous(memory_format=torch.channels_last))
    """
    fast = copy.deepcopy(backbone)
    fast.eval()  # some backbones' train() returns None: do not chain
    folded = _fold(fast)
    for param in fast.parameters():
        param.requires_grad_(False)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    return fast, folded
