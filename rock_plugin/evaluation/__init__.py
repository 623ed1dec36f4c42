from .rock_metric import RockMetric, compute_rock_metrics

__all__ = ['RockMetric', 'compute_rock_metrics']
