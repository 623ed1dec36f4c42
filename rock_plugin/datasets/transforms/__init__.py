from .loading import LoadImageWithPreResize, LoadRockImage, read_rgb
from .rotate90 import RandomRotate90

__all__ = ['LoadImageWithPreResize', 'read_rgb', 'RandomRotate90',
           'LoadRockImage']  # the earlier name, kept for imports
