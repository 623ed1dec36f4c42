"""Metric maths without a registry: ROC / PR curves."""
