"""``CpuAmpOptimWrapper``: ``--amp`` on a CPU."""
import contextlib
from typing import Iterator

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CpuAmpOptimWrapper(OptimWrapper):
    """Mixed precision on CPU (``AmpOptimWrapper`` asserts CUDA): bfloat16
    autocast, no loss scaling needed."""

    @contextlib.contextmanager
    def optim_context(self, model) -> Iterator:
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield
