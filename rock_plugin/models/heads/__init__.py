from .open_set_head import UNKNOWN_LABEL, OpenSetLinearClsHead
from .open_set_mlp_head import OpenSetMLPClsHead

__all__ = ['OpenSetLinearClsHead', 'OpenSetMLPClsHead', 'UNKNOWN_LABEL']
