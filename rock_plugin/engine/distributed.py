"""Distributed training on CPU processes (gloo): mmengine assumes CUDA."""
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
                     backend: Optional[str] = None,
                     timeout: int = 1800) -> str:
    """Start the process group before the runner, working without CUDA
    (``Runner.setup_env`` then skips its own init).

    Args:
        launcher (str): ``'pytorch'`` starts it; others are left to mmengine.
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


# 'RockDistributedDataParallel': the earlier name, kept for saved configs.
@MODEL_WRAPPERS.register_module(
    name=['CpuCompatibleDistributedDataParallel',
          'RockDistributedDataParallel'])
class CpuCompatibleDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also runs on CPU processes (gloo):
    the runner always passes ``device_ids``, which DDP refuses for a CPU
    module, so they are dropped when the module has no CUDA parameter.

    Args:
        module (nn.Module): The model to wrap.
        device_ids (list, optional): As DDP; ignored for a CPU module.
        **kwargs: As :class:`mmengine.model.MMDistributedDataParallel`.

    Example:
        >>> model_wrapper_cfg = dict(
        ...     type='CpuCompatibleDistributedDataParallel')
    """

    def __init__(self, module, device_ids=None, **kwargs):
        on_cpu = all(not p.is_cuda for p in module.parameters())
        super().__init__(module=module,
                         device_ids=None if on_cpu else device_ids, **kwargs)


#: The earlier name, for ``from rock_plugin.engine import ...``.
RockDistributedDataParallel = CpuCompatibleDistributedDataParallel
