from .load_rock_image import LoadRockImage, read_rgb

__all__ = ['LoadRockImage', 'read_rgb']
