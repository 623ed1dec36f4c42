"""Deprecated module name: the metric is now
:mod:`rock_plugin.evaluation.metrics.class_report`."""
from .class_report import (ClassReportMetric, RockMetric,
                           compute_rock_metrics, format_per_class_table,
                           macro_metrics_from_confusion)

__all__ = ['ClassReportMetric', 'RockMetric', 'compute_rock_metrics',
           'format_per_class_table', 'macro_metrics_from_confusion']
