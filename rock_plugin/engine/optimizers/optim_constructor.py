"""Optimizer constructor that leaves frozen parameters out of the optimizer."""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                                 OPTIMIZERS)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableParamsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Like the default constructor, but only ``requires_grad`` parameters:
    a frozen backbone's millions of parameters stay out of the optimizer.

    Example:
        >>> optim_wrapper = dict(
        ...     constructor='TrainableParamsOptimWrapperConstructor',
        ...     optimizer=dict(type='SGD', lr=0.01))
    """

    def __call__(self, model):
        if hasattr(model, 'module'):
            model = model.module
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = self.optimizer_cfg.copy()
        if self.paramwise_cfg:
            groups = []
            self.add_params(groups, model)
            params = [g for g in groups if g['params'][0].requires_grad]
        else:
            params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError('every parameter is frozen: nothing to train')
        optimizer_cfg['params'] = params
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(wrapper_cfg,
                                    default_args=dict(optimizer=optimizer))
