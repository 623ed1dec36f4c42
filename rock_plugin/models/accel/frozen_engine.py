"""Faster, exact forward passes of a frozen backbone (fixed weights, eval
BN, no autograd: its training forward is inference).

An opt-in speed-up of :class:`~rock_plugin.models.RockImageClassifier`, named
by its ``frozen_engine`` field (the shipped configs set ``'auto'``; None is
mmpretrain's plain forward). :func:`build_fast_frozen_copy` folds each BN
into its convolution, makes stride-1 "same" padding static and ``Swish`` an
in-place ``SiLU``; :class:`FrozenEngine` runs that copy on one of
:data:`ENGINES` in micro-batches (``'auto'``: ONNX Runtime on CPU, the
fastest exact engine in ``tools/analysis/benchmark.py --engines``; eager on
CUDA). The copy is not a registered submodule: the backbone and its
checkpoints are untouched. Code that needs the plain forward for a while
(Grad-CAM) or a copy built from the current weights (a feature cache) says
so with :func:`use_frozen_engine` / :func:`plain_forward`.
"""
import copy
import importlib.util
import io
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ['ENGINES', 'EXACT_ENGINES', 'build_fast_frozen_copy',
           'FrozenEngine', 'check_engine', 'default_engine', 'is_tracing',
           'use_frozen_engine', 'plain_forward']

#: Engines of :class:`FrozenEngine`; all but ``'bf16'`` give the plain
#: backbone's output to float32 rounding (``EXACT_ENGINES``).
ENGINES = ('eager', 'onnxruntime', 'compile', 'bf16')
EXACT_ENGINES = ('eager', 'onnxruntime', 'compile')
# Images per engine call on CPU: B4 at 380 px runs ~20 % faster per image at
# 1 than at 4 (docs/benchmark.md, engine table).
CPU_MICRO_BATCH = 1


def check_engine(value, name: str = 'frozen_engine') -> Optional[str]:
    """A ``frozen_engine`` setting in its canonical form.

    Args:
        value (str | bool | None): ``'auto'``, a name of :data:`ENGINES`,
            None or False (the plain backbone), or True (``'auto'``, the
            meaning of the deprecated ``fast_frozen=True``).
        name (str): The setting's name, for the error. Defaults to
            'frozen_engine'.

    Returns:
        str | None: ``'auto'``, an engine name, or None.

    Example:
        >>> check_engine(True), check_engine(False), check_engine('eager')
        ('auto', None, 'eager')
    """
    if value is None or value is False:
        return None
    if value is True:
        return 'auto'
    if isinstance(value, str) and (value == 'auto' or value in ENGINES):
        return value
    raise ValueError(f'model.{name} must be "auto", one of {ENGINES} or '
                     f'None (the plain backbone), got {value!r}')


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


def _static_padding_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv`` (a ``Conv2dAdaptivePadding``) as a plain ``nn.Conv2d`` when
    its TF "same" padding is symmetric and size-independent (stride 1, odd
    effective kernel); otherwise ``conv`` itself."""
    totals = [(k - 1) * d for k, d in zip(conv.kernel_size, conv.dilation)]
    if any(s != 1 for s in conv.stride) or any(t % 2 for t in totals):
        return conv
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      1, tuple(t // 2 for t in totals), conv.dilation,
                      conv.groups, conv.bias is not None)
    plain.load_state_dict(conv.state_dict())
    return plain.to(conv.weight.device).eval()


def _can_fold(module: nn.Module) -> bool:
    from mmcv.cnn import ConvModule
    if not isinstance(module, ConvModule) or module.with_explicit_padding \
            or tuple(module.order) != ('conv', 'norm', 'act'):
        return False
    if getattr(module.conv, 'padding_mode', 'zeros') != 'zeros':
        return False
    norm = module.norm if module.with_norm else None
    return norm is None or (isinstance(norm, _BatchNorm) and
                            not norm.training and
                            norm.running_mean is not None)


def _fuse(module: nn.Module) -> int:
    """Fold, in place, every eval-mode conv -> BN -> act ``ConvModule``."""
    from mmcv.cnn.bricks.conv2d_adaptive_padding import \
        Conv2dAdaptivePadding
    from mmcv.cnn.bricks.swish import Swish
    count = 0
    for child in module.children():
        if not _can_fold(child):
            count += _fuse(child)
            continue
        conv = child.conv
        if child.with_norm:
            conv = fuse_conv_bn_eval(conv, child.norm)
            setattr(child, child.norm_name, nn.Identity())
            child.with_norm = False
        if type(conv) is Conv2dAdaptivePadding:
            conv = _static_padding_conv(conv)
        child.conv = conv
        if child.with_activation and isinstance(child.activate, Swish):
            child.activate = nn.SiLU(inplace=True)
        count += 1
    return count


def build_fast_frozen_copy(backbone: nn.Module, channels_last: bool = True
                           ) -> Tuple[nn.Module, int]:
    """A fused, eval-mode, autograd-free copy of a frozen ``backbone``.

    Args:
        backbone (nn.Module): The frozen backbone, in eval mode.
        channels_last (bool): Store the copy NHWC. Defaults to True.

    Returns:
        tuple[nn.Module, int]: The copy and how many mmcv ``ConvModule`` s
        were fused.

    Example:
        >>> fast, fused = build_fast_frozen_copy(model.backbone)
        >>> with torch.no_grad():
        ...     out = fast(x.contiguous(memory_format=torch.channels_last))
    """
    fast = copy.deepcopy(backbone)
    fast.eval()  # some backbones' train() returns None: do not chain
    fused = _fuse(fast)
    for param in fast.parameters():
        param.requires_grad_(False)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    return fast, fused


def default_engine(device: torch.device) -> str:
    """The fastest exact engine for ``device`` (``'auto'``)."""
    if torch.device(device).type != 'cpu' or \
            importlib.util.find_spec('onnxruntime') is None:
        return 'eager'
    return 'onnxruntime'


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out, )


class _Outputs(nn.Module):
    """The backbone with its outputs as a flat tuple (for the exporter)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return _as_tuple(self.module(x))


class FrozenEngine:
    """Run the fused copy of a frozen backbone on an inference engine.

    Args:
        backbone (nn.Module): The frozen backbone (eval mode), copied.
        engine (str): One of :data:`ENGINES` or ``'auto'``. ``'onnxruntime'``
            exports the copy in memory once per input size and runs one
            single-threaded call per micro-batch on as many threads as
            ``torch.get_num_threads()``; ``'compile'``: ``torch.compile``;
            ``'bf16'``: bfloat16 autocast (not exact).
        channels_last (bool): Eager/compiled copy NHWC. Defaults to True.
        device (torch.device | str): Where inputs will be. Defaults to cpu.
        micro_batch (int, optional): Images per engine call. Defaults to
            :data:`CPU_MICRO_BATCH` on CPU and the whole batch elsewhere.

    With autograd on (Grad-CAM), under a tracer, or for inputs the engine
    cannot take (ONNX Runtime: non-CPU, non-float32 or autocast), the eager
    copy runs instead.

    Example:
        >>> engine = FrozenEngine(model.backbone, 'auto')
        >>> with torch.no_grad():
        ...     feats = engine(inputs)  # a tuple, like the backbone's
    """

    def __init__(self, backbone: nn.Module, engine: str = 'auto',
                 channels_last: bool = True, device='cpu',
                 micro_batch: Optional[int] = None):
        device = torch.device(device)
        if engine == 'auto':
            engine = default_engine(device)
        if engine not in ENGINES:
            raise ValueError(f'engine must be "auto" or one of {ENGINES}, '
                             f'got {engine!r}')
        if engine == 'onnxruntime' and device.type != 'cpu':
            engine = 'eager'  # its CPU provider only: cuDNN does better
        self.engine = engine
        self.channels_last = channels_last
        self.module, self.fused = build_fast_frozen_copy(backbone,
                                                         channels_last)
        self.module.to(device)
        self.micro_batch = micro_batch or (
            CPU_MICRO_BATCH if device.type == 'cpu' else None)
        self._sessions = {}  # onnxruntime: one per input shape
        self._pool = None  # onnxruntime: torch.get_num_threads() threads
        self._compiled = torch.compile(self.module, dynamic=False) \
            if engine == 'compile' else None

    def eager(self, x: torch.Tensor) -> tuple:
        """The fused copy in eager PyTorch (the fallback of every engine)."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return _as_tuple(self.module(x))

    def __call__(self, x: torch.Tensor) -> tuple:
        if torch.is_grad_enabled() or is_tracing(x):
            return self.eager(x)
        chunks = torch.split(x, self.micro_batch or len(x))
        if self.engine == 'onnxruntime' and x.device.type == 'cpu' and \
                x.dtype == torch.float32 and \
                not torch.is_autocast_enabled('cpu'):
            session = self._session(x)
            # one single-threaded call per thread and micro-batch: on 2
            # cores ~1.3x the images/s of one 2-thread call, and no
            # spin-waiting threads stealing the data loader's CPU
            parts = list(self._pool.map(
                lambda c: session.run(None, {'input': c.contiguous().numpy()}),
                chunks))
            parts = [[torch.from_numpy(o) for o in p] for p in parts]
        else:
            parts = [self._run(chunk) for chunk in chunks]
        if len(parts) == 1:
            return tuple(parts[0])
        return tuple(torch.cat(level) for level in zip(*parts))

    def __deepcopy__(self, memo):
        # sessions and threads do not copy: a copied model (new tensors, so a
        # new key in RockImageClassifier) builds its own engine
        return None

    def _run(self, x: torch.Tensor) -> tuple:
        if self.engine == 'compile':
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            return _as_tuple(self._compiled(x))
        if self.engine == 'bf16':
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                out = self.eager(x)
            return tuple(o.float() for o in out)
        return self.eager(x)

    def _session(self, x: torch.Tensor):
        key = tuple(x.shape[1:])
        if key not in self._sessions:
            self._sessions[key] = self._export(x)
        return self._sessions[key]

    def _export(self, x: torch.Tensor):
        import onnxruntime as ort
        module = _Outputs(copy.deepcopy(self.module).to(
            memory_format=torch.contiguous_format)).eval()
        example = x[:1].contiguous()
        names = [f'out{i}' for i in range(len(module(example)))]
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.autocast('cpu', enabled=False):
            # the TorchScript exporter: the dynamo one needs seconds more and
            # gives the same graph for this plain CNN
            warnings.simplefilter('ignore')
            torch.onnx.export(
                module, (example, ), buffer, dynamo=False,
                input_names=['input'], output_names=names, opset_version=17,
                dynamic_axes={n: {0: 'batch'} for n in ['input'] + names})
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '0')
        if self._pool is None:
            self._pool = ThreadPoolExecutor(torch.get_num_threads())
        return ort.InferenceSession(buffer.getvalue(), options,
                                    providers=['CPUExecutionProvider'])


_KEEP = object()


@contextmanager
def use_frozen_engine(model: nn.Module, engine=_KEEP, rebuild: bool = False):
    """Inside the block, run ``model``'s frozen backbone on ``engine``; the
    model's own setting is restored on exit (also on errors).

    The one way other code changes the engine of a model for a while: the
    model's ``frozen_engine`` is not flipped by hand. A model without one
    (not a ``RockImageClassifier``) is left as it is.

    Args:
        model (nn.Module): The classifier (a model wrapper is unwrapped).
        engine (str | None): ``'auto'``, a name of :data:`ENGINES`, or None
            for mmpretrain's plain forward. Defaults to the model's own.
        rebuild (bool): Drop the fused copy first, so that it is built from
            the backbone's current weights (writes through ``.data`` leave
            no trace the model can see). Defaults to False.

    Example:
        >>> with use_frozen_engine(model, None):  # the plain backbone
        ...     feats = model.extract_feat(inputs)
        >>> with use_frozen_engine(model, rebuild=True):  # fresh copy
        ...     feats = model.extract_feat(inputs)
    """
    from rock_plugin.utils.model_wrappers import bare_model
    model = bare_model(model)
    if not hasattr(model, 'frozen_engine'):
        yield model
        return
    previous = model.frozen_engine
    try:
        if engine is not _KEEP:
            model.frozen_engine = engine
        if rebuild:
            model.reset_fast_path()
        yield model
    finally:
        model.frozen_engine = previous


def plain_forward(model: nn.Module):
    """``use_frozen_engine(model, None)``: mmpretrain's plain forward of the
    backbone inside the block.

    Example:
        >>> with plain_forward(model):
        ...     logits = model(inputs, mode='tensor')
    """
    return use_frozen_engine(model, None)
