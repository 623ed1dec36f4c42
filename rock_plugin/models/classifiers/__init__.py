from .dihedral_classifier import DihedralMeanClassifier, dihedral_views
from .rock_classifier import RockImageClassifier

__all__ = ['RockImageClassifier', 'DihedralMeanClassifier', 'dihedral_views']
