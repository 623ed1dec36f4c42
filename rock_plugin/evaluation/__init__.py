from .metrics import (ClassReportMetric, HeadOutputStats, PredictionCollector,
                      RockMetric, compute_rock_metrics)
from .result_tables import save_confusion_csv

__all__ = ['ClassReportMetric', 'RockMetric', 'PredictionCollector',
           'compute_rock_metrics', 'HeadOutputStats', 'save_confusion_csv']
