from .open_set_head import UNKNOWN_LABEL, OpenSetLinearClsHead

__all__ = ['OpenSetLinearClsHead', 'UNKNOWN_LABEL']
