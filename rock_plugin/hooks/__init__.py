from .history_hook import HistoryHook

__all__ = ['HistoryHook']
