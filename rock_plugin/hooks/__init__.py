from .history_hook import HistoryHook
from .rng_state_hook import RngStateHook

__all__ = ['HistoryHook', 'RngStateHook']
