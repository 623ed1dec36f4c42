"""Class-activation maps of a rock classifier, with the ``grad-cam`` package,
fed as testing does (test pipeline, data preprocessor); a frozen backbone runs
under :meth:`RockImageClassifier.backbone_grad`, fused where it can (else
under :func:`~rock_plugin.models.accel.plain_forward`).
"""
import contextlib
from itertools import chain
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from rock_plugin.models.accel import plain_forward, use_frozen_engine
from rock_plugin.utils.text import printable

CAM_METHODS = ('gradcam', 'gradcam++', 'layercam', 'eigencam')


class _Logits(nn.Module):
    """``normalised NCHW -> logits``: what ``pytorch_grad_cam`` calls."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs, mode='tensor')


def _trace(backbone: nn.Module, inputs: torch.Tensor) -> List[tuple]:
    """``(name, output)`` of every submodule, in the order they finished,
    plus ``('', the backbone's feature maps as a tuple)`` at the end."""
    fired: List[tuple] = []
    handles = [m.register_forward_hook(
        lambda mod, args, out, name=name: fired.append((name, out)))
        for name, m in backbone.named_modules() if name]
    try:
        with torch.no_grad():
            out = backbone(inputs)
    finally:
        for h in handles:
            h.remove()
    return fired + [('', tuple(out) if isinstance(out, (tuple, list))
                     else (out, ))]


class RockCAM:
    """Class-activation maps of images for a :class:`RockInferencer`'s model.

    Args:
        inferencer (RockInferencer): A PyTorch-backend inferencer.
        method (str): One of :data:`CAM_METHODS`. Defaults to 'gradcam'.
        target_layers (list[str], optional): Module names, e.g.
            ``['backbone.layers.5']`` (averaged). Defaults to the last module
            returning each feature map the backbone returns (the final one,
            and those a multi-level neck pools too: the head reads them
            all), not mmpretrain's last norm layer (folded away when fused).
        fast (bool): Try the model's ``frozen_engine`` (its fused copy)
            first. Defaults to True.

    Example:
        >>> cam = RockCAM(RockInferencer(cfg, ckpt), method='gradcam')
        >>> out = cam('rock.jpg', target_class='Chert')
        >>> out['cam'].shape, out['overlay'].dtype  # (H, W) in [0, 1]; RGB
        ((260, 260), dtype('uint8'))
    """

    def __init__(self, inferencer, method: str = 'gradcam',
                 target_layers: Optional[Sequence[str]] = None,
                 fast: bool = True):
        if inferencer.model is None:
            raise ValueError('Grad-CAM needs the PyTorch model (a config and '
                             'a checkpoint), not an ONNX file')
        self.inferencer = inferencer
        self.model = inferencer.model
        from pytorch_grad_cam import (EigenCAM, GradCAM, GradCAMPlusPlus,
                                      LayerCAM)
        classes = (GradCAM, GradCAMPlusPlus, LayerCAM, EigenCAM)
        if method not in CAM_METHODS:
            raise ValueError(f'method must be one of '
                             f'{", ".join(CAM_METHODS)}, got {method!r}')
        self.cam_class = dict(zip(CAM_METHODS, classes))[method]
        self.method = method
        if isinstance(target_layers, str):
            target_layers = [target_layers]
        self.target_layers = list(target_layers or [])
        self.fast = fast and getattr(self.model, 'frozen_engine',
                                     None) is not None
        #: Which backbone ran, and why (set by the first call).
        self.path: Optional[str] = None
        self.layer_names: List[str] = []
        self._traced: Dict[bool, tuple] = {}  # fast -> (ran, default)

    def class_index(self, target: Union[None, int, str]) -> Optional[int]:
        """``target`` (a class name or index) as an index; None stays None."""
        classes = self.inferencer.classes
        if target is None or isinstance(target, int):
            if target is not None and not 0 <= target < len(classes):
                raise ValueError(f'target_class={target}: out of range '
                                 f'(0-{len(classes) - 1})')
            return target
        if target in classes:
            return classes.index(target)
        names = printable(', '.join(classes), one_line=True)
        raise ValueError(f'target_class={target!r}: not a class of this '
                         f'model ({names})')

    def _layers(self, inputs: torch.Tensor, fast: bool) -> List[nn.Module]:
        """The target modules in the backbone that will run."""
        model = self.model
        backbone = model.fast_backbone(inputs) if fast else None
        if fast and not isinstance(backbone, nn.Module):
            raise LookupError('the model runs no fused copy')
        if fast and any(t.is_inference() for t in chain(
                backbone.parameters(), backbone.buffers())):
            # Built during an inference_mode prediction: its tensors cannot
            # take part in autograd. Build it again out here.
            model.reset_fast_path()
            backbone = model.fast_backbone(inputs)
        running = backbone if backbone is not None else model.backbone
        if fast not in self._traced:
            # Which modules run (a folded BN may remain as an unused
            # module) and which give the returned maps: one probe pass.
            probe = inputs
            if backbone is not None and model.channels_last:
                probe = inputs.contiguous(memory_format=torch.channels_last)
            *fired, (_, maps) = _trace(running, probe)
            # the last module to finish with each map (later ones win)
            last = {id(o): 'backbone.' + n for n, o in fired}
            self._traced[fast] = ({'backbone.' + n for n, _ in fired},
                                  [last[id(m)] for m in maps if id(m) in last])
        ran, default = self._traced[fast]
        names = self.target_layers or default
        if not names:
            raise ValueError('no backbone module returns its last feature '
                             'map; give target_layers')
        layers = []
        for name in names:
            if not name.startswith('backbone.'):
                try:
                    layers.append(model.get_submodule(name))
                    continue
                except AttributeError:
                    pass
            elif name in ran:
                layers.append(running.get_submodule(name[9:]))
                continue
            if fast:
                raise LookupError(f'{name} does not run in the fused '
                                  'backbone (folded away)')
            raise ValueError(f'target_layers: no module {name} runs in the '
                             'model (see print(model))')
        self.layer_names = names
        return layers

    def _run(self, inputs: torch.Tensor, index: Optional[int], fast: bool,
             eigen_smooth: bool) -> np.ndarray:
        from pytorch_grad_cam.utils.model_targets import \
            ClassifierOutputTarget
        model = self.model
        # A model that does not freeze its backbone has gradients anyway.
        grad = getattr(model, 'backbone_grad', contextlib.nullcontext)
        engine = use_frozen_engine(model) if fast else plain_forward(model)
        try:
            with engine, grad():
                layers = self._layers(inputs, fast)
                targets = None if index is None else \
                    [ClassifierOutputTarget(index)] * len(inputs)
                with self.cam_class(_Logits(model), layers) as cam:
                    try:
                        return cam(inputs, targets=targets,
                                   eigen_smooth=eigen_smooth)
                    except (TypeError, IndexError, ValueError) as exc:
                        if not fast:
                            raise
                        # e.g. an engine that bypasses the hooked modules
                        raise LookupError(f'no activations or gradients '
                                          f'from the fused copy ({exc})'
                                          ) from None
        finally:
            model.zero_grad(set_to_none=True)

    def __call__(self, item: Any, target_class: Union[None, int, str] = None,
                 eigen_smooth: bool = False) -> Dict[str, Any]:
        """The CAM of one image for one class.

        Args:
            item: An image path, a BGR array or a ``(name, array)`` pair.
            target_class (str | int, optional): Default: the predicted class.
            eigen_smooth (bool): ``pytorch_grad_cam``'s PCA smoothing.

        Returns:
            dict: ``file``, ``image`` (the model's input crop, RGB uint8),
            ``cam`` (H x W float32 in [0, 1]), ``overlay`` (RGB uint8),
            ``target_class`` and ``scores`` (class -> probability).
        """
        from mmengine.dataset import pseudo_collate
        from pytorch_grad_cam.utils.image import show_cam_on_image
        index = self.class_index(target_class)
        name, sample = self.inferencer.load(item)
        data = self.model.data_preprocessor(pseudo_collate([sample]), False)
        inputs = data['inputs']
        if (self.fast and self.path is None) or self.path == 'fused':
            try:
                grayscale = self._run(inputs, index, True, eigen_smooth)
                self.path = 'fused'
            except (LookupError, RuntimeError) as exc:
                self.path = f'plain ({exc})'
                grayscale = self._run(inputs, index, False, eigen_smooth)
        else:
            self.path = self.path or 'plain (fast path off)'
            grayscale = self._run(inputs, index, False, eigen_smooth)
        with torch.no_grad():
            logits = self.model(inputs, mode='tensor')
        probs = torch.softmax(logits.float(), 1)[0].cpu().numpy()
        classes = self.inferencer.classes
        if index is None:
            index = int(probs.argmax())
        # The packed input is the crop the model saw, BGR (mmcv's loader).
        image = np.ascontiguousarray(
            sample['inputs'].numpy().transpose(1, 2, 0)[..., ::-1])
        cam = grayscale[0].astype(np.float32)
        overlay = show_cam_on_image(image.astype(np.float32) / 255, cam,
                                    use_rgb=True)
        return dict(file=name, image=image, cam=cam, overlay=overlay,
                    target_class=classes[index] if index < len(classes)
                    else str(index),
                    scores={c: float(p) for c, p in zip(classes, probs)})
