"""Optimizer constructor that leaves frozen parameters out of the optimizer."""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                                 OPTIMIZERS)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableParamsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Like the default constructor, but only ``requires_grad`` parameters:
    a frozen backbone's millions of parameters stay out of the optimizer.
    With ``paramwise_cfg``, the groups at the base lr come first.

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
            # groups at the base lr first: the logged `lr` (history.csv,
            # mmengine's) is the first group's, not a backbone's lr_mult
            params.sort(key=lambda g: g.get('lr', self.base_lr)
                        != self.base_lr)
        else:
            params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError('every parameter is frozen: nothing to train')
        optimizer_cfg['params'] = params
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(wrapper_cfg,
                                    default_args=dict(optimizer=optimizer))
