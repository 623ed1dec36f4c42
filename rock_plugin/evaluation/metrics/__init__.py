from .class_report import ClassReportMetric, RockMetric, compute_rock_metrics
from .head_output_stats import HeadOutputStats
from .prediction_collector import PredictionCollector

__all__ = ['ClassReportMetric', 'RockMetric', 'PredictionCollector',
           'compute_rock_metrics', 'HeadOutputStats']
