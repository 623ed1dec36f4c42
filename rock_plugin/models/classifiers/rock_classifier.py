"""``RockImageClassifier``: an ImageClassifier that can freeze its backbone,
or its first stages."""
import warnings
from contextlib import contextmanager
from itertools import chain
from types import SimpleNamespace
from typing import Optional

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

from ..accel.frozen_engine import FrozenEngine, check_engine, is_tracing
from ..backbones.stages import StageChain

_UNSET = object()


@MODELS.register_module()
class RockImageClassifier(ImageClassifier):
    """``ImageClassifier`` with the original's ``freeze_layers=('backbone',)``.

    The freeze happens at build time: mmpretrain's ``frozen_stages`` acts in
    ``train()``, after DDP has registered every parameter ("Expected to have
    finished reduction"). A frozen backbone stays in eval mode and runs
    without autograd. ``frozen_stages=N`` freezes only the stem and the
    stages up to ``N`` (the same way, at build time) and trains the rest:
    the frozen prefix runs without autograd (on the frozen engine, exported
    alone, returning the maps the rest and the neck read), the rest in
    eager PyTorch; the output equals the plain backbone's.

    ``frozen_engine`` is an opt-in speed-up (the shipped configs name it):
    the frozen backbone runs as a fused copy on an inference engine
    (:mod:`.accel.frozen_engine`, ~1e-6 relative), rebuilt when a backbone
    tensor changes (call :meth:`reset_fast_path` after writing ``.data``)
    and skipped under tracing; ``state_dict`` and checkpoints are unchanged.
    Other code switches it for a while only through
    :func:`~.accel.use_frozen_engine` / :func:`~.accel.plain_forward`.

    Args:
        freeze_backbone (bool): Freeze the backbone's parameters and BN
            statistics. Defaults to False.
        frozen_stages (int, optional): Freeze the stem and the stages
            ``<= frozen_stages`` only (numbered as the backbone's
            ``out_indices``: :class:`~..backbones.StageChain`; EfficientNet
            (mmpretrain) and EfficientNetLite). When given it decides,
            whatever ``freeze_backbone`` says (a base config's True): the
            last stage freezes the whole backbone. Defaults to None.
        frozen_engine (str, optional): Engine of a frozen backbone:
            ``'auto'`` (the fastest exact one: ONNX Runtime on CPU, eager
            on CUDA), a name of :data:`~.accel.ENGINES`, or None for
            mmpretrain's plain forward. Defaults to 'auto', as before the
            field had a name: saved configs that do not name it keep their
            speed.
        channels_last (bool): Run the fused copy NHWC. Defaults to True.
        fast_frozen (bool | str): Deprecated name of ``frozen_engine``
            (True: ``'auto'``; False: None).
        **kwargs: Passed to :class:`mmpretrain.models.ImageClassifier`.

    Example:
        >>> model = MODELS.build(dict(
        ...     type='RockImageClassifier', freeze_backbone=True,
        ...     frozen_engine=None,  # mmpretrain's plain forward
        ...     backbone=dict(type='EfficientNet', arch='b0'),
        ...     neck=dict(type='GlobalAveragePooling'),
        ...     head=dict(type='LinearClsHead', num_classes=3,
        ...               in_channels=1280)))
        >>> # fine-tune the last two layers (stage 5 and the final conv)
        >>> model = MODELS.build(dict(
        ...     type='RockImageClassifier', frozen_stages=4,
        ...     backbone=dict(type='EfficientNet', arch='b0'),
        ...     neck=dict(type='GlobalAveragePooling'),
        ...     head=dict(type='LinearClsHead', num_classes=3,
        ...               in_channels=1280)))
    """

    def __init__(self, *args, freeze_backbone: bool = False,
                 frozen_stages: Optional[int] = None,
                 frozen_engine: Optional[str] = 'auto',
                 channels_last: bool = True, fast_frozen=_UNSET, **kwargs):
        frozen_engine = check_engine(frozen_engine)  # before the build
        if fast_frozen is not _UNSET:
            warnings.warn('RockImageClassifier(fast_frozen=...) is '
                          'deprecated: use frozen_engine=... (True: '
                          "'auto', False: None)", DeprecationWarning,
                          stacklevel=2)
            old = check_engine(fast_frozen, 'fast_frozen')
            # it overrides 'auto' (the default and the shipped configs'):
            # an old `--cfg-options model.fast_frozen=False` still works
            if frozen_engine not in ('auto', old):
                raise ValueError(
                    f'model.fast_frozen={fast_frozen!r} (deprecated) and '
                    f'model.frozen_engine={frozen_engine!r} disagree: '
                    'keep frozen_engine only')
            frozen_engine = old
        super().__init__(*args, **kwargs)
        self.frozen_stages = frozen_stages
        self._prefix_length = 0  # modules of the frozen prefix (partial)
        if frozen_stages is not None:
            chain = StageChain(self.backbone)
            length = chain.prefix_length(frozen_stages)
            freeze_backbone = length == len(chain)
            if not freeze_backbone:
                self._prefix_length = length
                for module in chain.modules[:length]:
                    module.requires_grad_(False).eval()
        self.freeze_backbone = freeze_backbone
        self.frozen_engine = frozen_engine
        self.channels_last = channels_last
        self._fast_state = None  # (key, FrozenEngine); not a submodule
        self._backbone_grad = False  # see backbone_grad()
        if freeze_backbone:
            self.backbone.requires_grad_(False).eval()

    @property
    def frozen_engine(self) -> Optional[str]:
        """``'auto'``, an engine name, or None (the plain backbone)."""
        return self._frozen_engine

    @frozen_engine.setter
    def frozen_engine(self, value) -> None:
        self._frozen_engine = check_engine(value)

    @property
    def fast_frozen(self):
        """Deprecated view of :attr:`frozen_engine` (True for ``'auto'``,
        False for None)."""
        engine = self.frozen_engine
        return engine is not None and (engine == 'auto' or engine)

    @fast_frozen.setter
    def fast_frozen(self, value) -> None:
        self.frozen_engine = check_engine(value, 'fast_frozen')

    # mmpretrain's `inference_model` picks its inferencer by the model-zoo
    # task in `_metainfo`, None for a config file (then it refuses any model).
    @property
    def _metainfo(self):
        return self.__dict__.get('_zoo_metainfo') or SimpleNamespace(
            results=[SimpleNamespace(task='Image Classification')])

    @_metainfo.setter
    def _metainfo(self, value):
        self.__dict__['_zoo_metainfo'] = value

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        elif self._prefix_length:  # its BN statistics stay frozen
            for module in self._frozen_prefix():
                module.eval()
        return self

    def _frozen_prefix(self):
        return StageChain(self.backbone).modules[:self._prefix_length]

    def backbone_features(self, inputs: torch.Tensor):
        """Backbone output; without autograd when the backbone is frozen."""
        if self.freeze_backbone:
            if self._backbone_grad and not inputs.requires_grad:
                # Frozen weights give the activations no gradient; an input
                # that requires one does (Grad-CAM reads them).
                inputs = inputs.detach().requires_grad_()
            with torch.set_grad_enabled(self._backbone_grad):
                if self.fast_backbone(inputs) is None:
                    return self.backbone(inputs)
                # the engine runs the eager copy when autograd is on
                return self._fast_state[1](inputs)
        if self._prefix_length and not is_tracing(inputs):
            return self._prefix_then_rest(inputs)
        return self.backbone(inputs)

    def _prefix_then_rest(self, inputs: torch.Tensor):
        """The frozen prefix without autograd (on the engine when set), then
        the trainable stages with it: the backbone's output."""
        return self.backbone_after_prefix(self.frozen_prefix_maps(inputs))

    def frozen_prefix_maps(self, inputs: torch.Tensor):
        """With ``frozen_stages``: the frozen prefix's maps of ``inputs``
        (no autograd; on the engine when set), which stay valid while the
        rest trains, so they may be cached (the open-set hook does);
        None when no stage is partly frozen."""
        if not self._prefix_length:
            return None
        chain, length = StageChain(self.backbone), self._prefix_length
        prefix = chain.prefix(length)
        if self._backbone_grad and not inputs.requires_grad:
            inputs = inputs.detach().requires_grad_()  # as backbone_features
        with torch.set_grad_enabled(self._backbone_grad):
            engine = None
            # leaves only: the chain's stem wrapper is new, in train mode
            if self.frozen_engine and not any(
                    m.training for m in prefix.modules()
                    if next(m.children(), None) is None):
                engine = self._engine(prefix, inputs, ('prefix', length))
            return prefix(inputs) if engine is None else engine(inputs)

    def backbone_after_prefix(self, maps) -> tuple:
        """The backbone's output from :meth:`frozen_prefix_maps`."""
        return StageChain(self.backbone).rest(self._prefix_length, maps)

    @contextmanager
    def backbone_grad(self):
        """Run a frozen backbone with autograd (for class-activation maps):
        gradients reach its activations, its weights stay frozen.

        Example:
            >>> with model.backbone_grad():
            ...     model(inputs, mode='tensor')[0, label].backward()
        """
        previous, self._backbone_grad = self._backbone_grad, True
        try:
            yield self
        finally:
            self._backbone_grad = previous

    def fast_backbone(self, inputs: torch.Tensor):
        """The fused copy of the frozen backbone for ``inputs``, or None when
        the plain backbone must run (fast path off, not frozen, backbone put
        in train mode, or a tracer/exporter at work)."""
        if not (self.freeze_backbone and self.frozen_engine) or \
                self.backbone.training or is_tracing(inputs):
            return None
        engine = self._engine(self.backbone, inputs, ())
        return None if engine is None else engine.module

    def _engine(self, module, inputs: torch.Tensor, tag: tuple):
        """The :class:`FrozenEngine` of the frozen ``module`` (the backbone
        or its prefix), built again when one of its tensors changed; None
        if they cannot be told apart (storage-less tensors)."""
        if is_tracing(inputs):
            return None
        tensors = chain(module.parameters(), module.buffers())
        try:
            key = (inputs.device, self.channels_last, self.frozen_engine) + \
                tag + tuple((id(t), t.data_ptr(), t._version, t.dtype,
                             t.device) for t in tensors)
        except (RuntimeError, NotImplementedError):  # storage-less tensors
            return None
        state = self._fast_state
        if state is None or state[0] != key:
            self._fast_state = None  # free the old copy first
            state = self._fast_state = (key, FrozenEngine(
                module, self.frozen_engine, self.channels_last,
                inputs.device))
        return state[1]

    def reset_fast_path(self) -> None:
        """Drop the fused copy; the next forward rebuilds it from the
        backbone's current weights."""
        self._fast_state = None

    def extract_feat(self, inputs: torch.Tensor,
                     stage: Optional[str] = 'neck'):
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
