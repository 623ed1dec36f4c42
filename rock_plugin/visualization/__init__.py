from .confusion import plot_confusion_matrix, save_confusion_csv
from .curves import plot_curves, read_history

__all__ = ['plot_curves', 'read_history', 'plot_confusion_matrix',
           'save_confusion_csv']
