"""An exported model's ONNX metadata read as data, never as code: a file
users receive may hold anything there, and mmengine's ``Registry.get``
imports any dotted ``type``. Only the keys, transforms and arguments
``tools/export_onnx.py`` writes pass; the pipeline is rebuilt from them."""
import json
from typing import Any, Dict, Iterable, List

from rock_plugin.utils.errors import DataError
from rock_plugin.utils.text import printable

# What onnx_export.export_onnx writes; any other key (``custom_imports``,
# ``_base_``...) means the file was not made by it.
EXPORT_KEYS = frozenset((
    'classes', 'num_classes', 'input_name', 'input_format', 'input_shape',
    'input_dtype', 'input_channel_order', 'normalisation', 'output',
    'test_pipeline', 'source_config', 'source_checkpoint', 'producer',
    'open_set'))
_MAX = 16384  # no image side above it: a crafted size is no memory bomb


def _size(lo: int, none: bool = False) -> tuple:
    # type() is int: JSON true is a Python int, but not a size.
    return ((lambda v: (none and v is None) or
             (type(v) is int and lo <= v <= _MAX)),
            ('null or ' if none else '') + f'an int {lo}-{_MAX}')


def _one_of(*values: str) -> tuple:
    return lambda v: v in values, 'one of ' + ', '.join(values)


# The transforms of the shipped configs' test pipelines, by plain name (a
# dotted one would be imported), and the arguments each may take. Not
# the loader's cache_dir: a path from the file would pick where we write.
_LOADER_ARGS = dict(min_size=_size(1, True), pre_resize=_size(1, True))
#: The loader, first if present: ``LoadRockImage`` is its earlier name,
#: which exports made before the rename carry.
LOADERS = ('LoadImageWithPreResize', 'LoadRockImage')
_INTERPOLATION = _one_of('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')
_BACKEND = _one_of('cv2', 'pillow')
_SIDE = _size(1)[0]
#: The transform that sizes the image, one of them in each pipeline.
SIZERS = {'EfficientNetCenterCrop': 'crop_size', 'Resize': 'scale'}
ALLOWED_TRANSFORMS = {
    **{name: _LOADER_ARGS for name in LOADERS},
    'EfficientNetCenterCrop': dict(
        crop_size=_size(1), crop_padding=_size(0),
        interpolation=_INTERPOLATION, backend=_BACKEND),
    # rock_quickstart_dihedral.py's whole-image resize; JSON makes its
    # (w, h) a list. Not keep_ratio: the model's input is N x N.
    'Resize': dict(
        scale=((lambda v: isinstance(v, list) and len(v) == 2 and
                all(_SIDE(x) for x in v)), f'[w, h], ints 1-{_MAX}'),
        interpolation=_INTERPOLATION, backend=_BACKEND),
    'PackInputs': {},
}


def _shown(value: Any) -> str:
    # JSON ("260" is not 260), short and escaped (huge, terminal escapes).
    text = json.dumps(value, default=str)
    return printable(text[:60] + '...' * (len(text) > 60), one_line=True)


def check_classes(classes: Any, path: str,
                  key: str = 'metadata classes') -> List[str]:
    """``classes`` as a list if it is a non-empty list (or tuple) of unique
    non-blank strings, else a :class:`DataError` naming ``path`` and ``key``.

    Example:
        >>> check_classes(['Chert', 'Bauxite'], 'm.onnx')
        ['Chert', 'Bauxite']
    """
    if not isinstance(classes, (list, tuple)) or not classes:
        raise DataError(f'{key} must be a non-empty list of class names, '
                        f'got {_shown(classes)}', path)
    seen = set()
    for i, name in enumerate(classes):
        if not isinstance(name, str) or not name.strip() or name in seen:
            raise DataError(f'{key}[{i}] must be a non-empty string named '
                            f'once, got {_shown(name)}', path)
        seen.add(name)
    return list(classes)


def check_test_pipeline(steps: Any, path: str) -> List[Dict[str, Any]]:
    """New dicts of the checked ``steps``: ``[LoadImageWithPreResize,] crop
    or resize, PackInputs`` with allowed arguments of plain JSON types only.

    Example:
        >>> check_test_pipeline([{'type': 'PackInputs'}], 'm.onnx')
        [{'type': 'PackInputs'}]
    """
    key = 'metadata test_pipeline'
    if not isinstance(steps, list) or not steps:
        raise DataError(f'{key} must be a non-empty list of transforms, got '
                        f'{_shown(steps)}', path)
    checked = []
    for i, step in enumerate(steps):
        name = step.get('type') if isinstance(step, dict) else None
        if not isinstance(name, str) or name not in ALLOWED_TRANSFORMS:
            raise DataError(f'{key}[{i}].type {_shown(name)} is not an '
                            'allowed transform (allowed: '
                            f'{", ".join(ALLOWED_TRANSFORMS)})', path)
        spec, new = ALLOWED_TRANSFORMS[name], dict(type=name)
        for arg, value in step.items():
            check, kind = spec.get(arg, (None, None))
            if arg != 'type' and check is None:
                raise DataError(f'{key}[{i}].{printable(arg[:60], True)} is '
                                f'not an argument of {name} (allowed: '
                                f'{", ".join(spec) or "none"})', path)
            if arg != 'type' and not check(value):
                raise DataError(f'{key}[{i}].{arg} must be {kind}, got '
                                f'{_shown(value)}', path)
            new[arg] = list(value) if isinstance(value, list) else value
        if (name == 'PackInputs') != (i == len(steps) - 1) or \
                (name in LOADERS and i) or \
                (name in SIZERS and SIZERS[name] not in new):
            raise DataError(f'{key}[{i}]: {name} out of place or without '
                            'its size (expected [LoadImageWithPreResize,] '
                            'EfficientNetCenterCrop(crop_size=N) or '
                            'Resize(scale=[N, N]), PackInputs)', path)
        checked.append(new)
    return checked


def check_open_set(info: Any, path: str) -> Dict[str, Any]:
    """The checked ``open_set`` metadata: ``temperature`` (a number >= 1
    or so), ``unknown_threshold`` (a number or null), ``bank_labels`` (ints
    >= 0) and ``bank_files`` (strings, empty or one per label), returned as
    the inferencer's ``open_set`` (``threshold``, ``bank_files`` or None,
    ``bank_labels``, ``temperature``).

    Example:
        >>> check_open_set(dict(temperature=1.2, unknown_threshold=2.0,
        ...                     bank_labels=[0], bank_files=['a.jpg']), 'm')
        {'threshold': 2.0, 'bank_files': ['a.jpg'], ...}
    """
    key = 'metadata open_set'
    fields = ('temperature', 'unknown_threshold', 'bank_labels',
              'bank_files')
    if not isinstance(info, dict) or set(info) != set(fields):
        raise DataError(f'{key} must be an object with exactly '
                        f'{", ".join(fields)}', path)

    def number(v):
        return type(v) in (int, float) and abs(v) < 1e30

    labels, files = info['bank_labels'], info['bank_files']
    checks = (
        ('temperature', number(info['temperature']) and
         info['temperature'] > 0, 'a positive number'),
        ('unknown_threshold', info['unknown_threshold'] is None or
         number(info['unknown_threshold']), 'a number or null'),
        ('bank_labels', isinstance(labels, list) and all(
            type(v) is int and 0 <= v < 100000 for v in labels),
         'a list of class indices'),
        ('bank_files', isinstance(files, list) and all(
            isinstance(f, str) and len(f) < 4096 for f in files) and
         len(files) in (0, len(labels) if isinstance(labels, list) else -1),
         'a list of file names, one per bank label'))
    for name, ok, kind in checks:
        if not ok:
            raise DataError(f'{key}.{name} must be {kind}', path)
    threshold = info['unknown_threshold']
    return dict(threshold=float('inf') if threshold is None
                else float(threshold), bank_files=list(files) or None,
                bank_labels=list(labels),
                temperature=float(info['temperature']))


def read_onnx_metadata(path: str, props: Iterable,
                       pipeline: bool = True) -> Dict[str, Any]:
    """Check the metadata of the ONNX file ``path`` before any use.

    Args:
        path (str): The ``.onnx`` file, named in the messages.
        props (Iterable): ``(key, value)`` pairs or ``metadata_props``.
        pipeline (bool): ``--onnx`` alone: also refuse keys the export does
            not write and require a valid ``test_pipeline``. False: only
            ``classes`` is read (a config gives the pipeline).

    Returns:
        dict: ``classes`` (None if absent), the checked ``test_pipeline``
        (None unless ``pipeline``) and ``open_set`` (:func:`check_open_set`,
        None if absent); else a one-line :class:`DataError`.

    Example:
        >>> read_onnx_metadata('m.onnx', onnx.load('m.onnx').metadata_props)
        {'classes': ['AnhydriteRock', ...], 'test_pipeline': [...]}
    """
    meta: Dict[str, str] = {}
    for entry in props:
        key, value = (entry.key, entry.value) if hasattr(entry, 'key') \
            else entry
        if key in meta:  # two readers could pick different copies
            raise DataError(f'metadata {_shown(key)} appears twice', path)
        meta[key] = value
    extra = sorted(set(meta) - EXPORT_KEYS)
    if pipeline and extra:
        raise DataError(f'metadata {_shown(extra[0])} is not written by '
                        'tools/export_onnx.py; refused', path)
    if pipeline and 'test_pipeline' not in meta:
        raise DataError('no test_pipeline in its metadata (not exported by '
                        'tools/export_onnx.py); give the config and '
                        'checkpoint too', path)

    def parse(key):
        try:
            return json.loads(meta[key])
        except (ValueError, RecursionError):  # Recursion: deep nesting
            raise DataError(f'metadata {key}: not JSON', path) from None

    return dict(
        classes=check_classes(parse('classes'), path)
        if 'classes' in meta else None,
        test_pipeline=check_test_pipeline(parse('test_pipeline'), path)
        if pipeline else None,
        open_set=check_open_set(parse('open_set'), path)
        if 'open_set' in meta else None)
