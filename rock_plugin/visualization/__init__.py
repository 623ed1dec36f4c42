"""Drawing only: figures and images from numbers the caller computed (no
metric maths, no result tables)."""
from .confusion import plot_confusion_matrix
from .curves import plot_curves, read_history

__all__ = ['plot_curves', 'read_history', 'plot_confusion_matrix']
