"""``LoadRockImage``: robust, optionally reduced-size image decoding."""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ..annotations import DataError


def read_rgb(path: str, min_size: Optional[int] = None) -> np.ndarray:
    """Decode any common image into an ``(H, W, 3)`` uint8 RGB array.

    Grayscale, palette, RGBA/LA (alpha dropped), CMYK and 16-bit/float images
    are converted instead of failing; 16-bit data is scaled to 8 bit.

    Args:
        path (str): Image file.
        min_size (int, optional): When given, JPEGs are decoded at the
            smallest 1/2, 1/4 or 1/8 scale whose short side stays at least
            ``min_size`` (libjpeg's DCT scaling via PIL ``draft``), which is
            several times faster on large photos.

    Returns:
        np.ndarray: RGB pixels.

    Raises:
        DataError: missing, truncated, corrupt or non-image file (the
            message names the file).

    Example:
        >>> img = read_rgb('rocks/Chert/1.jpg', min_size=412)
    """
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(path):
        raise DataError('image not found', path)
    try:
        with Image.open(path) as img:
            if min_size and img.format == 'JPEG':
                w, h = img.size
                scale = 1
                while scale < 8 and min(w, h) // (scale * 2) >= min_size:
                    scale *= 2
                if scale > 1:
                    img.draft('RGB', (w // scale, h // scale))
            img.load()  # full decode: truncated data fails here, not later
            img = _to_rgb(img)
            return np.asarray(img)
    except UnidentifiedImageError:
        raise DataError('not an image (unrecognised file format)',
                        path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f'cannot decode image ({exc})', path) from None


def _to_rgb(img):
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        from PIL import Image
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255)
                              .astype(np.uint8))
    elif img.mode == 'F':
        from PIL import Image
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        img = Image.fromarray(((arr - lo) / max(hi - lo, 1e-12) * 255)
                              .astype(np.uint8))
    return img if img.mode == 'RGB' else img.convert('RGB')


@TRANSFORMS.register_module()
class LoadRockImage(BaseTransform):
    """Load an image like ``LoadImageFromFile``, robustly and optionally fast.

    Differences from mmcv's loader, which the original trainer used:

    * odd but valid images (grayscale, CMYK, RGBA, 16-bit) just work;
    * a missing, corrupt or non-image file raises one :class:`DataError`
      naming the file and its annotation line, instead of an assertion deep in
      a data-loader worker;
    * ``min_size`` decodes JPEGs at reduced scale (PIL ``draft``) when the
      crop needs fewer pixels than the photo has.

    Output is BGR uint8 like mmcv (the data preprocessor's ``to_rgb`` flips
    it), with ``img_shape`` and ``ori_shape``.

    Args:
        min_size (int, optional): Short side to keep when decoding JPEGs at
            reduced scale; ``None`` decodes at full size (exact maths).

    Example:
        >>> pipeline = [dict(type='LoadRockImage', min_size=412), ...]
    """

    def __init__(self, min_size: Optional[int] = None):
        self.min_size = min_size

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            rgb = read_rgb(path, self.min_size)
        except DataError as exc:
            if results.get('ann_line') and results.get('ann_file'):
                raise DataError(f'{exc} (listed at {results["ann_file"]}:'
                                f'{results["ann_line"]})') from None
            raise
        img = np.ascontiguousarray(rgb[..., ::-1])
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(min_size={self.min_size})'
