from .head_output_stats import HeadOutputStats
from .prediction_collector import PredictionCollector
from .rock_metric import RockMetric, compute_rock_metrics

__all__ = ['RockMetric', 'PredictionCollector', 'compute_rock_metrics',
           'HeadOutputStats']
