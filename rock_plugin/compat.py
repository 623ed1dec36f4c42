"""Every fix for a breakage of our pinned stack, in one place.

The stack (torch 2.14, mmengine 0.10.7, mmpretrain 1.2.0) breaks in ways the
product must absorb. Each fix below names the breakage it answers and has a
test in ``tests/test_compat.py``.

1. **Checkpoints under ``weights_only=True``.** Since torch 2.6 ``torch.load``
   defaults to ``weights_only=True`` and mmengine's checkpoints hold
   ``HistoryBuffer`` objects whose class-level ``statistics_methods`` are bound
   methods, so loading needs ``builtins.getattr`` on the allowlist, and that
   lets a pickle call any method. We never fix it with ``weights_only=False``:
   :class:`SafeCheckpointHook` rewrites the message hub (and any numpy value)
   into plain types when a checkpoint is saved and back after it is loaded, so
   our checkpoints load with the stock allowlist; :func:`load_checkpoint_file`
   (registered as mmengine's local-file loader, so resume, ``load_from``,
   pretrained ``init_cfg``, test, predict and export all go through it) loads
   with ``weights_only=True`` and refuses anything else with a clear message.
   Stock/legacy files load only on an explicit opt-in
   (``ROCK_PLUGIN_TRUST_CHECKPOINTS=1`` or ``--trust-checkpoint``), which adds
   mmengine's and numpy's types to the allowlist: still no arbitrary code.
2. **CPU multi-process.** mmengine's pytorch launcher calls
   ``torch.cuda.set_device`` and the runner gives DDP ``device_ids``; both fail
   without CUDA. :func:`init_distributed` starts a gloo process group itself
   (mmengine then skips its own init) and :class:`RockDistributedDataParallel`
   drops ``device_ids`` on CPU.
   The same hook keeps the configured ``end`` of every LR scheduler on
   resume (a scheduler's saved state would otherwise keep the old run's end).
3. **Atomic checkpoint files.** mmengine writes checkpoints (``LocalBackend.put``)
   and the ``last_checkpoint`` pointer (``open(..., 'w')`` in
   ``CheckpointHook``) in place, so a kill mid-write leaves a truncated file
   that ``--resume`` then picks. Both now go through a temp file + rename;
   a failed write (disk full, read-only) names the file and keeps the old one.
4. **``--amp`` on CPU.** ``AmpOptimWrapper`` asserts CUDA;
   :class:`CpuAmpOptimWrapper` autocasts to bfloat16 on CPU instead.
"""
import contextlib
import os
import os.path as osp
import pickle
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, MODEL_WRAPPERS, OPTIM_WRAPPERS
from mmengine.runner.checkpoint import CheckpointLoader

TRUST_ENV = 'ROCK_PLUGIN_TRUST_CHECKPOINTS'
_HB_MARK = '__rock_history_buffer__'
_ND_MARK = '__rock_ndarray__'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot (or must not) be loaded."""


# --------------------------------------------------------------------------
# 1. checkpoints that load under weights_only=True
# --------------------------------------------------------------------------
def to_plain(obj: Any) -> Any:
    """Rewrite ``obj`` into types ``torch.load(weights_only=True)`` accepts.

    ``HistoryBuffer`` and numpy arrays become marked dicts (undone by
    :func:`from_plain`), numpy scalars become Python numbers; tensors, dicts,
    lists, tuples, str, numbers, bool and None are kept.

    Args:
        obj: Any checkpoint value.

    Returns:
        The same value made of allowlisted types only.

    Example:
        >>> to_plain({'x': np.float32(1.5)})
        {'x': 1.5}
    """
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


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Write checkpoints that load with ``weights_only=True`` and no extra
    allowlist; restore them after loading.

    ``before_save_checkpoint`` runs on the checkpoint dict before
    ``torch.save``; ``after_load_checkpoint`` runs right after ``torch.load``
    and before the runner restores the message hub, so the rest of mmengine
    sees the usual objects.

    Example:
        >>> custom_hooks = [dict(type='SafeCheckpointHook')]
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = from_plain(checkpoint[key])
        self._keep_configured_schedule_end(runner, checkpoint)

    @staticmethod
    def _keep_configured_schedule_end(runner, checkpoint: dict) -> None:
        """A scheduler's state dict holds its ``end``; loading it on resume
        would keep the old run's schedule end even when the config now trains
        longer. The freshly built scheduler's ``end`` (from the config) wins."""
        saved = checkpoint.get('param_schedulers')
        built = getattr(runner, 'param_schedulers', None)
        if not saved or not built or not getattr(runner, '_resume', False):
            return
        if isinstance(built, dict):  # {optimizer name: [schedulers]}
            pairs = [(s, b) for name in built
                     for s, b in zip(saved.get(name, []), built[name])]
        else:
            pairs = list(zip(saved, built))
        for state, scheduler in pairs:
            if isinstance(state, dict) and 'end' in state and \
                    state['end'] != scheduler.end:
                print_log(f'resume: {type(scheduler).__name__} end '
                          f'{state["end"]} -> {scheduler.end} (from the '
                          'config)', logger='current')
                state['end'] = scheduler.end


def trust_legacy_checkpoints() -> bool:
    """Whether the user opted in to load stock/legacy mmengine checkpoints."""
    return os.environ.get(TRUST_ENV, '').lower() in ('1', 'true', 'yes')


def _legacy_globals() -> List[Any]:
    # What stock mmengine 0.10.7 checkpoints pickle besides tensors. getattr is
    # needed by HistoryBuffer's bound statistics methods; it is only allowed
    # on the user's explicit opt-in for files they trust.
    import builtins
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = [HistoryBuffer, builtins.getattr, OrderedDict, np.ndarray,
               np.dtype, _reconstruct, scalar]
    allowed += [type(np.dtype(t)) for t in
                ('float64', 'float32', 'float16', 'int64', 'int32', 'int8',
                 'uint8', 'bool')]
    return allowed


def _checkpoints_beside(path: str) -> List[str]:
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        return []
    found = [osp.join(folder, f) for f in os.listdir(folder)
             if f.endswith('.pth') and osp.join(folder, f) != osp.abspath(path)]
    return sorted(found, key=osp.getmtime, reverse=True)


def load_checkpoint_file(filename: str, map_location=None,
                         trust: Optional[bool] = None) -> Dict[str, Any]:
    """Load a checkpoint file with ``weights_only=True``, safely.

    Registered as mmengine's loader for local files, so every load in the
    product uses it.

    Args:
        filename (str): The ``.pth`` file.
        map_location: As :func:`torch.load`.
        trust (bool, optional): Allow stock mmengine checkpoints (adds
            ``HistoryBuffer``, ``getattr`` and numpy types to the allowlist).
            Defaults to the ``ROCK_PLUGIN_TRUST_CHECKPOINTS`` variable.

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Truncated/corrupt file, or a pickle that refers to
            anything outside the allowlist (which is never executed).

    Example:
        >>> ckpt = load_checkpoint_file('work_dirs/rock_b4/epoch_3.pth')
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'{filename}: checkpoint not found (check the path; pretrained '
            'weights are set with --cfg-options '
            'model.backbone.init_cfg.checkpoint=/path/to/file.pth)')
    trust = trust_legacy_checkpoints() if trust is None else trust
    ctx = torch.serialization.safe_globals(_legacy_globals()) if trust \
        else contextlib.nullcontext()
    try:
        with ctx:
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).split('\n')
        culprit = next((line.strip() for line in detail
                        if 'Unsupported global' in line or 'GLOBAL' in line),
                       detail[0])
        raise CheckpointError(
            f'{filename}: refused to load: the file refers to code or types '
            f'outside the safe allowlist ({culprit}). Nothing from it was '
            'run. Checkpoints written by rock_plugin never need this. If it '
            'is a stock mmengine/mmpretrain checkpoint you trust, set '
            f'{TRUST_ENV}=1 (or pass --trust-checkpoint) to allow mmengine\'s '
            'HistoryBuffer and numpy types.') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        others = _checkpoints_beside(filename)
        offer = (f' The previous checkpoint beside it is {others[0]}: resume '
                 f'with --resume {others[0]}') if others else ''
        raise CheckpointError(
            f'{filename}: the checkpoint is truncated or corrupt '
            f'({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).'
            f'{offer}') from None


def load_url_checkpoint(url: str, map_location=None,
                        model_dir: Optional[str] = None,
                        progress: bool = False) -> Dict[str, Any]:
    """Download a checkpoint once (torch hub cache), then load it safely.

    Replaces mmengine's http(s) loader, whose ``torch.load`` would bypass
    :func:`load_checkpoint_file` and whose offline failure is a bare
    ``URLError`` traceback. In distributed runs local rank 0 downloads.

    Args:
        url (str): ``http(s)://`` address of the ``.pth`` file.
        map_location: As :func:`torch.load`.
        model_dir (str, optional): Cache folder; defaults to
            ``$TORCH_HOME/hub/checkpoints``.
        progress (bool): Show a progress bar.

    Returns:
        dict: The checkpoint.
    """
    from urllib.parse import urlparse

    import torch.distributed as dist
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
                'e.g. --cfg-options '
                'model.backbone.init_cfg.checkpoint=/path/to/file.pth') \
                from None
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return load_checkpoint_file(cached, map_location)


CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file,
                                 force=True)
CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                 loader=load_url_checkpoint, force=True)


# --------------------------------------------------------------------------
# 3. atomic checkpoint and pointer writes (numbered as in the module doc)
# --------------------------------------------------------------------------
def _atomic_put(self, obj: bytes, filepath) -> None:
    """``LocalBackend.put``, atomically; a failure keeps the old file."""
    from rock_plugin.utils.atomic_io import atomic_write
    try:
        with atomic_write(str(filepath), 'wb') as f:
            f.write(obj)
    except OSError as exc:
        raise OSError(exc.errno, f'could not write {filepath} '
                      f'({exc.strerror or exc}); nothing was overwritten: '
                      'the previous checkpoint and history are kept') from None


def _atomic_put_text(self, obj: str, filepath, encoding: str = 'utf-8'):
    _atomic_put(self, obj.encode(encoding), filepath)


def _open_pointer(file, mode='r', *args, **kwargs):
    """``open`` as seen by mmengine's CheckpointHook: its only write is the
    ``last_checkpoint`` pointer, which becomes atomic."""
    if mode == 'w':
        from rock_plugin.utils.atomic_io import atomic_write
        return atomic_write(file, 'w', *args, **kwargs)
    return open(file, mode, *args, **kwargs)


def _install_atomic_writes() -> None:
    from mmengine.fileio.backends import local_backend
    from mmengine.hooks import checkpoint_hook
    local_backend.LocalBackend.put = _atomic_put
    local_backend.LocalBackend.put_text = _atomic_put_text
    checkpoint_hook.open = _open_pointer


_install_atomic_writes()


# --------------------------------------------------------------------------
# 2. distributed training on CPU processes
# --------------------------------------------------------------------------
def use_cuda(device: Optional[str] = None) -> bool:
    """Whether this run uses CUDA (``device='cpu'`` forces CPU)."""
    if device is not None and str(device).startswith('cpu'):
        return False
    return torch.cuda.is_available()


def init_distributed(launcher: str, device: Optional[str] = None,
                     backend: Optional[str] = None, timeout: int = 1800) -> str:
    """Start the process group before the runner, working without CUDA.

    mmengine's ``_init_dist_pytorch`` calls ``torch.cuda.set_device`` and
    defaults to nccl; on a CPU machine we start gloo ourselves, after which
    ``Runner.setup_env`` sees an initialised group and skips its own init.

    Args:
        launcher (str): ``'none'`` or ``'pytorch'`` (others left to mmengine).
        device (str, optional): ``'cpu'`` forces the CPU path.
        backend (str, optional): Overrides the backend choice.
        timeout (int): Seconds for collectives.

    Returns:
        str: The backend used (``''`` when not distributed).
    """
    import datetime
    import torch.distributed as dist
    if launcher != 'pytorch' or dist.is_initialized():
        return dist.get_backend() if dist.is_initialized() else ''
    cuda = use_cuda(device)
    backend = backend or ('nccl' if cuda else 'gloo')
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    dist.init_process_group(backend=backend,
                            timeout=datetime.timedelta(seconds=timeout))
    return backend


@MODEL_WRAPPERS.register_module()
class RockDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also runs on CPU processes.

    The runner always passes ``device_ids=[LOCAL_RANK]``; DDP needs
    ``device_ids=None`` for a CPU module, so drop it then.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        on_cpu = all(not p.is_cuda for p in module.parameters())
        super().__init__(module=module,
                         device_ids=None if on_cpu else device_ids, **kwargs)


# --------------------------------------------------------------------------
# 4. --amp on CPU
# --------------------------------------------------------------------------
@OPTIM_WRAPPERS.register_module()
class CpuAmpOptimWrapper(OptimWrapper):
    """Mixed precision on CPU: bfloat16 autocast, no loss scaling needed.

    ``AmpOptimWrapper`` asserts CUDA; on CPU ``--amp`` selects this instead.
    """

    @contextlib.contextmanager
    def optim_context(self, model) -> Iterator:
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield
