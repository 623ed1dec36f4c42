"""Reading checkpoints without ever running code from them.

Pickles load with ``weights_only=True``: ours hold only plain types
(:func:`to_plain`); trust mode allows stock mmengine ones, whose pickled
``getattr`` is restricted to ``HistoryBuffer`` statistics (the real one could
reach anything). Config text that mmengine executes (resume, inferencers) is
stripped on load (:func:`strip_config_text`) and read only with :mod:`ast`.
"""
import ast
import contextlib
import os
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .errors import CheckpointError

TRUST_ENV = 'ROCK_PLUGIN_TRUST_CHECKPOINTS'
_HB_MARK = '__rock_history_buffer__'
_ND_MARK = '__rock_ndarray__'
# Where mmengine and mmpretrain keep config text in a checkpoint.
CONFIG_TEXT_KEYS = (('meta', 'config'), ('meta', 'cfg'),
                    ('message_hub', 'runtime_info', 'cfg'))


def to_plain(obj: Any) -> Any:
    """Rewrite ``obj`` into types ``torch.load(weights_only=True)`` accepts:
    ``HistoryBuffer`` and numpy arrays become marked dicts (undone by
    :func:`from_plain`), numpy scalars Python numbers; the rest is kept."""
    if isinstance(obj, HistoryBuffer):
        return {_HB_MARK: True, 'log': obj._log_history.tolist(),
                'count': obj._count_history.tolist(),
                'max_length': obj.max_length}
    if isinstance(obj, np.ndarray):
        return {_ND_MARK: True, 'data': obj.tolist(), 'dtype': str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        kind = OrderedDict if isinstance(obj, OrderedDict) else dict
        return kind((k, to_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    return obj


def from_plain(obj: Any) -> Any:
    """Undo :func:`to_plain` (restores ``HistoryBuffer`` and numpy arrays)."""
    if isinstance(obj, dict):
        if obj.get(_HB_MARK) is True:
            return HistoryBuffer(obj['log'], obj['count'], obj['max_length'])
        if obj.get(_ND_MARK) is True:
            return np.array(obj['data'], dtype=obj['dtype'])
        for k in list(obj):
            obj[k] = from_plain(obj[k])
        return obj
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_plain(v) for v in obj)
    return obj


def _history_buffer_getattr(obj: Any, name: str, *default: Any) -> Any:
    """A stock checkpoint's pickled ``getattr``: only a ``HistoryBuffer``'s
    statistics methods (mmengine pickles ``getattr(HistoryBuffer, 'mean')``
    and so on)."""
    is_buffer = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
    if is_buffer and isinstance(name, str) and \
            name in HistoryBuffer._statistics_methods:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'GLOBAL builtins.getattr used on {type(obj).__name__}.{name!s:.40}: '
        'only HistoryBuffer statistics methods are allowed')


def _legacy_globals() -> List[Any]:
    # What stock mmengine 0.10.7 checkpoints pickle besides tensors. getattr
    # is the restricted stand-in above, never builtins.getattr.
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
               OrderedDict, np.ndarray, np.dtype, _reconstruct, scalar]
    allowed += [type(np.dtype(t)) for t in
                ('float64', 'float32', 'float16', 'int64', 'int32', 'int8',
                 'uint8', 'bool')]
    return allowed


def load_checkpoint_file(filename: str, map_location=None,
                         trust: Optional[bool] = None) -> Dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and strip its config text
    (:func:`strip_config_text`) so that no later step can execute it.

    Args:
        filename (str): The ``.pth`` file.
        map_location: As :func:`torch.load`.
        trust (bool, optional): Also allow stock mmengine checkpoints;
            defaults to the ``ROCK_PLUGIN_TRUST_CHECKPOINTS`` variable.

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Empty, truncated or corrupt file, or a pickle that
            refers to anything outside the allowlist (never executed).
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'{filename}: checkpoint not found (check the path; pretrained '
            'weights are set with the config key '
            'model.backbone.init_cfg.checkpoint=/path/to/file.pth)')
    if osp.getsize(filename) == 0:
        raise CheckpointError(f'{filename}: the checkpoint file is empty '
                              '(0 bytes): an interrupted copy or download?')
    if trust is None:  # the user opted in to stock mmengine checkpoints
        trust = os.environ.get(TRUST_ENV, '').lower() in ('1', 'true', 'yes')
    ctx = torch.serialization.safe_globals(_legacy_globals()) if trust \
        else contextlib.nullcontext()
    try:
        with ctx:
            checkpoint = torch.load(filename, map_location=map_location,
                                    weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        culprit = next((ln for ln in detail if 'Unsupported global' in ln
                        or 'GLOBAL' in ln), detail[0] if detail else '')
        # Offer trust mode only for what it allows: a stock checkpoint.
        legacy = any(name in culprit for name in (
            'HistoryBuffer', 'numpy', 'getattr', '_codecs'))
        hint = ('' if trust or not legacy else
                ' It looks like a stock mmengine/mmpretrain checkpoint: if '
                f'you trust it, set {TRUST_ENV}=1 (or load it with '
                "trust=True), which allows mmengine's HistoryBuffer and "
                'numpy types only, never arbitrary code.')
        raise CheckpointError(
            f'{filename}: refused to load: the file refers to code or types '
            f'outside the safe allowlist ({culprit}). Nothing from it was '
            'run. Checkpoints written by rock_plugin never need this.'
            + hint) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError,
            ValueError, IndexError) as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()),
                     type(exc).__name__)[:200]
        raise CheckpointError(
            f'{filename}: the checkpoint is truncated or corrupt '
            f'({type(exc).__name__}: {first}). Use another '
            'checkpoint (a run keeps the previous one beside the latest).') \
            from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{filename}: not a checkpoint (a '
                              f'{type(checkpoint).__name__}, not a dict)')
    removed = strip_config_text(checkpoint)
    # The one value mmengine's resume reads from the config text, as data.
    gpu_ids = read_config_literal(removed.get('meta.config'), 'gpu_ids')
    if gpu_ids is not None and isinstance(checkpoint.get('meta'), dict):
        checkpoint['meta'].setdefault('gpu_ids', gpu_ids)
    return checkpoint


def strip_config_text(checkpoint: dict) -> Dict[str, str]:
    """Remove, in place, config text that mmengine would execute; returns
    ``{'meta.config': text, ...}`` for each string removed."""
    removed = {}
    for path in CONFIG_TEXT_KEYS:
        parent = checkpoint
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent:
            removed['.'.join(path)] = parent.pop(path[-1])
    return removed


def read_config_literal(text: Any, name: str, default: Any = None) -> Any:
    """The value of a top-level ``name = <literal>`` in Python config
    ``text``, read with :func:`ast.literal_eval` without running it;
    ``default`` when ``text`` is not a str or has no such assignment.

    Example:
        >>> read_config_literal("gpu_ids = [0, 1]", 'gpu_ids')
        [0, 1]
    """
    try:
        tree = ast.parse(text) if isinstance(text, str) else None
    except (SyntaxError, ValueError):
        tree = None
    for node in (tree.body if tree else []):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name
                for t in node.targets):
            with contextlib.suppress(ValueError, TypeError, SyntaxError):
                return ast.literal_eval(node.value)
    return default


def load_url_checkpoint(url: str, map_location=None,
                        model_dir: Optional[str] = None,
                        progress: bool = False) -> Dict[str, Any]:
    """Download a checkpoint once into ``model_dir`` (torch hub's cache) on
    local rank 0, then load it with :func:`load_checkpoint_file`; mmengine's
    http(s) loader calls ``torch.load`` itself and fails offline with a bare
    ``URLError``."""
    from urllib.parse import urlparse

    from mmengine.dist import barrier
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.isfile(cached) and int(os.environ.get('LOCAL_RANK', 0)) == 0:
        os.makedirs(model_dir, exist_ok=True)
        try:
            download_url_to_file(url, cached, progress=progress)
        except OSError as exc:  # URLError, timeouts, DNS failures
            reason = getattr(exc, 'reason', exc)
            raise CheckpointError(
                f'{url}: could not download the pretrained weights '
                f'({reason}). Without network, fetch the file elsewhere, copy '
                f'it to {cached} or anywhere, and point the config at it, '
                'e.g. the config key '
                'model.backbone.init_cfg.checkpoint=/path/to/file.pth') \
                from None
    barrier()
    return load_checkpoint_file(cached, map_location)


@contextlib.contextmanager
def safe_checkpoint_loaders() -> Iterator[None]:
    """Route mmengine's ``CheckpointLoader`` (pretrained ``init_cfg``,
    ``load_checkpoint``) through the loaders above while the block runs;
    scoped, so importing ``rock_plugin`` changes nothing global."""
    from mmengine.runner.checkpoint import CheckpointLoader
    saved = dict(CheckpointLoader._schemes)
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file,
                                     force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                     loader=load_url_checkpoint, force=True)
    try:
        yield
    finally:
        CheckpointLoader._schemes.clear()
        CheckpointLoader._schemes.update(saved)
