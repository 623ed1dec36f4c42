from .loading import LoadImageWithPreResize, LoadRockImage, read_rgb

__all__ = ['LoadImageWithPreResize', 'read_rgb',
           'LoadRockImage']  # the earlier name, kept for imports
