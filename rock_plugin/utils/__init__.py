from .atomic_io import atomic_save_figure, atomic_write

__all__ = ['atomic_write', 'atomic_save_figure']
