"""``LoadRockImage``: robust, optionally reduced-size or cached image decoding."""
import contextlib
import hashlib
import io
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.errors import DataError


def read_rgb(path: str, min_size: Optional[int] = None) -> np.ndarray:
    """Decode any common image into an ``(H, W, 3)`` uint8 RGB array.

    Grayscale, palette, RGBA/LA (alpha dropped), CMYK and 16-bit/float images
    are converted instead of failing; 16-bit data is scaled to 8 bit. The EXIF
    orientation is applied, as mmcv's ``LoadImageFromFile`` does.

    Args:
        path (str): Image file.
        min_size (int, optional): When given, JPEGs are decoded at the
            smallest 1/2, 1/4 or 1/8 scale whose short side stays at least
            ``min_size`` (libjpeg's DCT scaling), which is several times
            faster on large photos.

    Returns:
        np.ndarray: RGB pixels.

    Raises:
        DataError: missing, truncated, corrupt or non-image file (the
            message names the file).

    Example:
        >>> img = read_rgb('rocks/Chert/1.jpg', min_size=412)
    """
    return np.ascontiguousarray(read_bgr(path, min_size)[..., ::-1])


def read_bgr(path: str, min_size: Optional[int] = None) -> np.ndarray:
    """:func:`read_rgb` in mmcv's BGR channel order (what pipelines use)."""
    return decode_bgr(_read_bytes(path), path, min_size)


def _read_bytes(path: str) -> bytes:
    """The file's content; :class:`DataError` naming it if it is missing
    or unreadable."""
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
    if min_size:
        while scale < 8 and min(size) // (scale * 2) >= min_size:
            scale *= 2
    return scale


_CV2_REDUCED = {1: 'IMREAD_COLOR', 2: 'IMREAD_REDUCED_COLOR_2',
                4: 'IMREAD_REDUCED_COLOR_4', 8: 'IMREAD_REDUCED_COLOR_8'}


def decode_bgr(data: bytes, path: str,
               min_size: Optional[int] = None) -> np.ndarray:
    """Decode image bytes into ``(H, W, 3)`` uint8 BGR pixels.

    Plain 8-bit colour or grayscale JPEGs (nearly every photo) are decoded by
    OpenCV exactly as mmcv's ``LoadImageFromFile`` does (same library, same
    pixels, EXIF orientation applied), which is about 1.7x faster than PIL;
    everything else goes through PIL, which reads more formats and modes.

    Args:
        data (bytes): The file's content.
        path (str): Its name, for error messages.
        min_size (int, optional): See :func:`read_rgb`.

    Returns:
        np.ndarray: BGR pixels.
    """
    from PIL import Image
    with _pil_errors(path):
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            fmt, mode, size = img.format, img.mode, img.size
    # A truncated JPEG (no end-of-image marker) decodes "successfully" in
    # OpenCV with grey rows; PIL's decoder reports it, so it takes PIL.
    if fmt == 'JPEG' and mode in ('RGB', 'L') and \
            data.rstrip(b'\0')[-2:] == b'\xff\xd9':
        import cv2
        flag = getattr(cv2, _CV2_REDUCED[_jpeg_scale(size, min_size)])
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if bgr is not None and bgr.ndim == 3 and bgr.shape[2] == 3:
            return bgr
    return np.ascontiguousarray(_decode_pil(data, path, min_size)[..., ::-1])


def _decode_pil(data: bytes, path: str, min_size: Optional[int]) -> np.ndarray:
    """Decode with PIL into RGB pixels (any mode PIL reads)."""
    from PIL import Image, ImageOps
    with _pil_errors(path):
        with Image.open(io.BytesIO(data)) as img:
            if min_size and img.format == 'JPEG':
                scale = _jpeg_scale(img.size, min_size)
                if scale > 1:
                    w, h = img.size
                    img.draft(img.mode, (w // scale, h // scale))
            img.load()  # full decode: truncated data fails here, not later
            img = ImageOps.exif_transpose(img)
            return np.asarray(_to_rgb(img))


@contextlib.contextmanager
def _pil_errors(path: str):
    """Turn PIL's errors for a bad file into one :class:`DataError`."""
    from PIL import UnidentifiedImageError
    from PIL.Image import DecompressionBombError
    try:
        yield
    except UnidentifiedImageError:
        raise DataError('not an image (unrecognised file format)',
                        path) from None
    except DecompressionBombError as exc:
        # PIL refuses images over 2 x Image.MAX_IMAGE_PIXELS before decoding.
        raise DataError(f'image too large to decode safely ({exc}); downscale '
                        'it, or leave it out (--skip-bad-images)',
                        path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f'cannot decode image ({exc})', path) from None


def shrink_short_side(rgb: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the short side is ``short_side`` (area filter); images that
    are already that small are returned unchanged (never upsampled)."""
    import cv2
    h, w = rgb.shape[:2]
    if min(h, w) <= short_side:
        return rgb
    scale = short_side / min(h, w)
    if h <= w:
        size = (round(w * scale), short_side)
    else:
        size = (short_side, round(h * scale))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


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
      crop needs fewer pixels than the photo has;
    * ``cache_dir`` (opt-in) keeps the decoded, optionally pre-resized
      (``pre_resize``) pixels as ``.npy`` files keyed by a hash of the file's
      bytes and the settings, so a later epoch or run skips the JPEG decode;
      an edited file gets a new key, so the cache never serves stale pixels.

    ``min_size`` and ``pre_resize`` change pixel values (a reduced-scale
    decode or an area resize before the crop) and are therefore opt-in: the
    defaults decode every image at full size, exactly like the plain path.
    ``min_size=412`` suits a 380 px center crop (crop_padding 32), which
    always downsamples; random crops may upsample small regions, so keep
    training pipelines at full size. On 640x512 photos ``min_size=412`` gives
    no reduction (half scale would be 320x256); on the original 1280x1024
    photos it decodes at 640x512.

    Output is BGR uint8 like mmcv (the data preprocessor's ``to_rgb`` flips
    it), with ``img_shape`` and ``ori_shape``.

    Results that already hold pixels (``img``, no ``img_path``) are passed
    on, made 3-channel BGR: mmpretrain's ``ImageClassificationInferencer``
    removes only ``LoadImageFromFile`` from the test pipeline and feeds
    ``mmcv.imread`` arrays, so configs using this loader work with it as
    they are.

    Args:
        min_size (int, optional): Short side to keep when decoding JPEGs at
            reduced scale; ``None`` decodes at full size (exact maths).
        cache_dir (str, optional): Folder for the decoded-pixel cache
            (created on demand; safe to share between workers and runs).
        pre_resize (int, optional): Shrink the decoded image so its short side
            is this many pixels (area filter, never upsamples) before caching
            and returning it.

    Example:
        >>> pipeline = [dict(type='LoadRockImage', min_size=412), ...]
        >>> pipeline = [dict(type='LoadRockImage', cache_dir='.cache/rocks',
        ...                  pre_resize=412), ...]
    """

    def __init__(self, min_size: Optional[int] = None,
                 cache_dir: Optional[str] = None,
                 pre_resize: Optional[int] = None):
        self.min_size = min_size
        self.cache_dir = osp.expanduser(cache_dir) if cache_dir else None
        self.pre_resize = pre_resize

    def _read(self, path: str) -> np.ndarray:
        if self.cache_dir is None:
            bgr = read_bgr(path, self.min_size)
            if self.pre_resize:
                bgr = shrink_short_side(bgr, self.pre_resize)
            return bgr
        data = _read_bytes(path)
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
        self._store(cached, bgr)
        return bgr

    @staticmethod
    def _store(cached: str, bgr: np.ndarray) -> None:
        try:
            # Atomic, so a worker reading the entry never sees half of it.
            with atomic_write(cached, 'wb') as f:
                np.save(f, np.ascontiguousarray(bgr), allow_pickle=False)
        except OSError:
            pass  # a read-only or full cache only costs speed

    def transform(self, results: dict) -> dict:
        if results.get('img_path') is None and results.get('img') is not None:
            # Already decoded: mmpretrain's ImageClassificationInferencer
            # removes only `LoadImageFromFile` from the pipeline and passes
            # the pixels (BGR, from mmcv.imread) without a path.
            img = self._decoded(results['img'])
        else:
            img = self._read_listed(results)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _read_listed(self, results: dict) -> np.ndarray:
        try:
            return self._read(results['img_path'])
        except DataError as exc:
            if results.get('ann_line') and results.get('ann_file'):
                raise DataError(f'{exc} (listed at {results["ann_file"]}:'
                                f'{results["ann_line"]})') from None
            raise

    def _decoded(self, img: np.ndarray) -> np.ndarray:
        """Pixels given as an array, in the layout a decoded file has:
        3-channel BGR (gray and BGRA arrays converted), ``pre_resize``
        applied. ``min_size`` acts only when decoding, so not here."""
        import cv2
        if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if self.pre_resize:
            img = shrink_short_side(img, self.pre_resize)
        return img

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_size}, '
                f'cache_dir={self.cache_dir!r}, pre_resize={self.pre_resize})')
