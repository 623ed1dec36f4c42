"""Distributed training on CPU processes (gloo), where mmengine assumes CUDA.

mmengine's pytorch launcher calls ``torch.cuda.set_device`` and defaults to
nccl, and the runner gives DDP ``device_ids``; both fail without CUDA.
:func:`init_distributed` starts the process group first (mmengine then skips
its own init) and :class:`RockDistributedDataParallel`, named in the configs
as ``model_wrapper_cfg``, drops ``device_ids`` for a CPU module.
"""
import os
from typing import Optional

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


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


