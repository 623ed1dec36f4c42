from .rock_classifier import RockImageClassifier

__all__ = ['RockImageClassifier']
