from .metrics import (HeadOutputStats, PredictionCollector, RockMetric,
                      compute_rock_metrics)

__all__ = ['RockMetric', 'PredictionCollector', 'compute_rock_metrics',
           'HeadOutputStats']
