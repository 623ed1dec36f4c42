"""``LoadImageWithPreResize``: robust decoding, optionally at a reduced size
and cached."""
import contextlib
import hashlib
import io
import os.path as osp
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageOps, UnidentifiedImageError

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.errors import DataError


def read_rgb(path: str, min_size: Optional[int] = None) -> np.ndarray:
    """Decode any common image (grayscale, RGBA, CMYK, 16-bit...) into an
    ``(H, W, 3)`` uint8 RGB array, EXIF orientation applied like mmcv.

    Args:
        path (str): Image file.
        min_size (int, optional): Least short side of a reduced-scale (1/2
            to 1/8, much faster) JPEG decode.

    Returns:
        np.ndarray: RGB pixels.

    Raises:
        DataError: missing, truncated, corrupt or non-image file.
    """
    bgr = decode_bgr(_read_bytes(path), path, min_size)
    return np.ascontiguousarray(bgr[..., ::-1])


def _read_bytes(path: str) -> bytes:
    if not osp.isfile(path):
        raise DataError('image not found', path)
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as exc:
        raise DataError(f'cannot read image ({exc})', path) from None


def _jpeg_scale(size, min_size: Optional[int]) -> int:
    """The largest libjpeg scale-down (1, 2, 4, 8) keeping ``min_size``."""
    scale = 1
    while min_size and scale < 8 and min(size) // (scale * 2) >= min_size:
        scale *= 2
    return scale


def decode_bgr(data: bytes, path: str,
               min_size: Optional[int] = None) -> np.ndarray:
    """:func:`read_rgb` of the bytes of ``path``, in BGR order.

    8-bit JPEGs (nearly every photo) go through OpenCV as in mmcv (same
    pixels, 1.7x faster than PIL); everything else through PIL.
    """
    with _pil_errors(path), Image.open(io.BytesIO(data)) as img:
        fmt, mode, size = img.format, img.mode, img.size  # header only
    # A truncated JPEG (no end-of-image marker) decodes "successfully" in
    # OpenCV with grey rows; PIL's decoder reports it, so it takes PIL.
    if fmt == 'JPEG' and mode in ('RGB', 'L') and \
            data.rstrip(b'\0')[-2:] == b'\xff\xd9':
        scale = _jpeg_scale(size, min_size)
        flag = cv2.IMREAD_COLOR if scale == 1 else getattr(
            cv2, f'IMREAD_REDUCED_COLOR_{scale}')
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if bgr is not None and bgr.ndim == 3 and bgr.shape[2] == 3:
            return bgr
    with _pil_errors(path), Image.open(io.BytesIO(data)) as img:
        scale = _jpeg_scale(img.size, min_size)
        if img.format == 'JPEG' and scale > 1:
            w, h = img.size
            img.draft(img.mode, (w // scale, h // scale))
        img.load()  # full decode: truncated data fails here, not later
        rgb = np.asarray(_to_rgb(ImageOps.exif_transpose(img)))
    return np.ascontiguousarray(rgb[..., ::-1])


@contextlib.contextmanager
def _pil_errors(path: str):
    """Turn PIL's errors for a bad file into one :class:`DataError`."""
    try:
        yield
    except UnidentifiedImageError:
        raise DataError('not an image (unrecognised file format)',
                        path) from None
    except Image.DecompressionBombError as exc:
        # PIL refuses images over 2 x Image.MAX_IMAGE_PIXELS before decoding.
        raise DataError(f'image too large to decode safely ({exc}); downscale '
                        'it, or leave it out (skip_bad_images=True)',
                        path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f'cannot decode image ({exc})', path) from None


def shrink_short_side(rgb: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the short side is ``short_side`` (area filter); images that
    are already that small are returned unchanged (never upsampled)."""
    h, w = rgb.shape[:2]
    if min(h, w) <= short_side:
        return rgb
    scale = short_side / min(h, w)
    size = ((round(w * scale), short_side) if h <= w else
            (short_side, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def to_bgr3(img: np.ndarray) -> np.ndarray:
    """Gray and BGRA arrays as 3-channel BGR, as mmcv's loader gives files."""
    channels = img.shape[2] if img.ndim == 3 else None
    if img.ndim == 2 or channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) if channels == 4 else img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255)
                              .astype(np.uint8))
    elif img.mode == 'F':
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        img = Image.fromarray(((arr - lo) / max(hi - lo, 1e-12) * 255)
                              .astype(np.uint8))
    return img if img.mode == 'RGB' else img.convert('RGB')


# 'LoadRockImage': the earlier name, kept for saved configs and ONNX files.
@TRANSFORMS.register_module(name=['LoadImageWithPreResize', 'LoadRockImage'])
class LoadImageWithPreResize(BaseTransform):
    """mmcv's ``LoadImageFromFile``, robust, with an optional pre-resize.

    Any common image (16-bit, CMYK, RGBA, EXIF-rotated...) becomes 3-channel
    BGR; a bad file raises one :class:`DataError` naming it and its
    annotation line. Two opt-in pre-resizes change pixels: ``min_size``
    decodes JPEGs at a reduced scale (``min_size=412`` suits a 380 px center
    crop, not random crops), ``pre_resize`` shrinks the short side. With
    ``cache_dir`` the result is kept as ``.npy``, keyed by the file's bytes
    and the settings. Pixels given without ``img_path`` (mmpretrain's
    inferencer) are made 3-channel and pre-resized.

    Args:
        min_size (int, optional): See :func:`read_rgb`; None: full size.
        cache_dir (str, optional): Folder of the ``.npy`` pixel cache.
        pre_resize (int, optional): Short side to shrink images to.

    Example:
        >>> pipeline = [dict(type='LoadImageWithPreResize', pre_resize=256),
        ...             ...]
    """

    def __init__(self, min_size: Optional[int] = None,
                 cache_dir: Optional[str] = None,
                 pre_resize: Optional[int] = None):
        self.min_size = min_size
        self.cache_dir = osp.expanduser(cache_dir) if cache_dir else None
        self.pre_resize = pre_resize

    def _read(self, path: str) -> np.ndarray:
        data = _read_bytes(path)
        cached = None
        if self.cache_dir is not None:
            digest = hashlib.blake2b(data, digest_size=20)
            digest.update(f'|min_size={self.min_size}|pre_resize='
                          f'{self.pre_resize}|bgr|v2'.encode())
            key = digest.hexdigest()
            cached = osp.join(self.cache_dir, key[:2], key + '.npy')
            if osp.isfile(cached):
                try:
                    return np.load(cached, allow_pickle=False)
                except (OSError, ValueError, EOFError):
                    pass  # damaged cache entry: decode again and replace it
        bgr = decode_bgr(data, path, self.min_size)
        if self.pre_resize:
            bgr = shrink_short_side(bgr, self.pre_resize)
        if cached is not None:
            # Atomic, so a worker reading the entry never sees half of it;
            # a read-only or full cache only costs speed.
            with contextlib.suppress(OSError), \
                    atomic_write(cached, 'wb') as f:
                np.save(f, np.ascontiguousarray(bgr), allow_pickle=False)
        return bgr

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        if results.get('img_path') is None and img is not None:
            # Already decoded (see the class docstring); min_size acts only
            # when decoding, so not here.
            img = to_bgr3(img)
            if self.pre_resize:
                img = shrink_short_side(img, self.pre_resize)
        else:
            try:
                img = self._read(results['img_path'])
            except DataError as exc:
                if results.get('ann_line') and results.get('ann_file'):
                    raise DataError(f'{exc} (listed at {results["ann_file"]}'
                                    f':{results["ann_line"]})') from None
                raise
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_size}, '
                f'cache_dir={self.cache_dir!r}, pre_resize={self.pre_resize})')


#: The earlier name, for ``from rock_plugin.datasets import ...``.
LoadRockImage = LoadImageWithPreResize
