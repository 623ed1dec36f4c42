"""The one unwrapping of a runner's model (DDP, mmpretrain's TTA model)."""
import torch.nn as nn


def bare_model(model: nn.Module, tta: bool = False) -> nn.Module:
    """The model inside mmengine's wrappers (DDP and the like) and, with
    ``tta``, inside a TTA model too: the module that holds the backbone,
    the head and the weights.

    Args:
        model (nn.Module): ``runner.model`` or any model.
        tta (bool): Also step into a ``BaseTTAModel``. Defaults to False.

    Returns:
        nn.Module: The inner model (``model`` itself when unwrapped).

    Example:
        >>> head = bare_model(runner.model).head
    """
    # imported here: mmengine.model pulls in torch.distributed machinery
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or (tta and isinstance(model,
                                                         BaseTTAModel)):
        model = model.module
    return model
