"""Make a small, downscaled copy (or subset) of a folder-per-class dataset.

Used to build the bundled demo (``demo/rock_thin_sections``): every distinct
image (or a few per class), re-encoded small enough to ship inside the
repository, in the same folder-per-class layout that
:class:`~rock_plugin.datasets.RockDataset` reads directly.
"""
import io
import os
import os.path as osp
import random
from typing import Dict, List, Optional

import numpy as np
from PIL import Image, ImageOps

from ..utils.atomic_io import atomic_write
from .annotations import DataError, IMG_EXTENSIONS, scan_class_folders
from .checks import check_images

MIB = 1024 * 1024


def pick_per_class(paths: List[str], per_class: Optional[int], seed: int,
                   class_name: str) -> List[str]:
    """Choose ``per_class`` paths of one class, the same ones on every run.

    Each class has its own generator (seeded with the seed and the class
    name), so adding or removing images of one class never changes the
    choice in another.

    Args:
        paths (list[str]): The class's images.
        per_class (int, optional): How many to keep (all when None or when
            there are fewer).
        seed (int): Seed of the choice.
        class_name (str): The class.

    Returns:
        list[str]: The chosen paths, sorted.

    Example:
        >>> pick_per_class(['a.jpg', 'b.jpg', 'c.jpg'], 2, 0, 'Chert')
        ['b.jpg', 'c.jpg']
    """
    # random.Random with a str seed hashes it with SHA-512: stable across
    # runs, platforms and PYTHONHASHSEED.
    if per_class is None or per_class >= len(paths):
        return sorted(paths)
    rng = random.Random(f'{seed}/{class_name}')
    chosen = rng.sample(sorted(paths), per_class)
    return sorted(chosen)


def downscale_jpeg(path: str, size: int = 224, quality: int = 85) -> bytes:
    """Re-encode one image as a JPEG whose shorter side is at most ``size``.

    The EXIF orientation is applied first (OpenCV, the training loader,
    applies it too), 16-bit images are scaled to 8 bits rather than clipped,
    and images are never enlarged (bicubic downscaling). Metadata is
    dropped.

    Args:
        path (str): Source image.
        size (int): Target shorter side in pixels.
        quality (int): JPEG quality, 1-95.

    Returns:
        bytes: The JPEG file.
    """
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        img.load()
    if img.mode.startswith('I;16'):
        img = Image.fromarray((np.asarray(img, dtype=np.uint32) // 257)
                              .astype(np.uint8), 'L')
    elif img.mode in ('I', 'F'):
        arr = np.asarray(img, dtype=np.float64)
        top = max(float(arr.max()), 1.0)
        img = Image.fromarray((arr.clip(0) / top * 255).astype(np.uint8), 'L')
    elif img.mode not in ('RGB', 'L'):
        img = img.convert('RGB')
    w, h = img.size
    if min(w, h) > size:
        scale = size / min(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        # Bicubic, as the shared copy was made; a little smaller than
        # Lanczos once re-encoded, which matters under a size cap.
        img = img.resize(new, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    # Progressive + optimised Huffman tables: ~5% smaller, read everywhere.
    img.save(buf, 'JPEG', quality=quality, optimize=True, progressive=True)
    return buf.getvalue()


def make_subset(src: str,
                out_dir: str,
                per_class: Optional[int] = None,
                size: int = 256,
                quality: int = 85,
                seed: int = 0,
                max_mb: float = 7.5,
                overwrite: bool = False) -> Dict[str, object]:
    """Write a downscaled JPEG copy (or subset) of a folder-per-class dataset.

    Everything is encoded in memory first: when the total exceeds
    ``max_mb`` nothing is written. Output files keep their class folder and
    name, with a ``.jpg`` extension.

    Args:
        src (str): Folder with one sub-folder per class.
        out_dir (str): Output folder, with the same class folders.
        per_class (int, optional): Images per class (fewer if a class has
            fewer); None keeps every usable, distinct image.
        size (int): Shorter side of the output images (never enlarged).
        quality (int): JPEG quality, 1-95.
        seed (int): Seed of the choice of images.
        max_mb (float): Largest total size of the images in MiB (as
            ``du -h`` counts).
        overwrite (bool): Allow a non-empty ``out_dir``; images there that are
            not part of the new subset are removed, other files are kept.

    Returns:
        dict: ``files`` (paths written), ``bytes`` (their total size),
        ``per_class`` (count per class), ``sizes`` (set of ``(w, h)``) and
        ``report`` (the :class:`DatasetReport` of the source: unusable
        images and extra copies of duplicates are never picked).

    Example:
        >>> info = make_subset('data/rock_thin_sections', 'demo/rocks',
        ...                    size=256, quality=85)
        >>> info['bytes'] < 7.5 * 1024 * 1024
        True
    """
    if per_class is not None and per_class < 1:
        raise ValueError(f'per_class must be at least 1, got {per_class}')
    if size < 1:
        raise ValueError(f'size must be at least 1, got {size}')
    if not 1 <= quality <= 95:
        raise ValueError(f'quality must be in [1, 95], got {quality}')
    src_real, out_real = osp.realpath(src), osp.realpath(out_dir)
    if _inside(out_real, src_real) or _inside(src_real, out_real):
        raise DataError('the output folder overlaps the source folder; '
                        'choose one outside it', out_dir)
    if osp.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise DataError('output folder is not empty (overwrite=True / '
                        '--overwrite replaces the images in it)', out_dir)

    classes, samples = scan_class_folders(src)
    # Keep usable, distinct images only: both copies of a duplicate could
    # land on both sides of a train/val split and inflate its accuracy.
    report = check_images(samples, root=src, class_names=classes,
                          min_per_class=1)
    encoded, per_count, sizes = {}, {}, set()
    for label, name in enumerate(classes):
        paths = [p for i, (p, lbl) in enumerate(samples)
                 if lbl == label and i not in report.excluded]
        chosen = pick_per_class(paths, per_class, seed, name)
        per_count[name] = len(chosen)
        for rel in chosen:
            dest = osp.splitext(rel)[0] + '.jpg'
            if dest in encoded:
                raise DataError(f'two images would both be written as {dest} '
                                '(same name, different extension); rename '
                                'one', osp.join(src, rel))
            data = downscale_jpeg(osp.join(src, rel), size, quality)
            with Image.open(io.BytesIO(data)) as img:
                sizes.add(img.size)
            encoded[dest] = data
    total = sum(len(d) for d in encoded.values())
    if total > max_mb * MIB:
        raise DataError(
            f'the subset would take {total / MIB:.2f} MiB, over the '
            f'{max_mb} MiB limit; lower per_class ({per_class}), size '
            f'({size}) or quality ({quality})', out_dir)

    written = []
    for rel, data in encoded.items():
        dest = osp.join(out_dir, rel)
        with atomic_write(dest, 'wb') as f:
            f.write(data)
        written.append(dest)
    if overwrite:
        _remove_stale_images(out_dir, set(encoded))
    return dict(files=written, bytes=total, per_class=per_count,
                sizes=sizes, report=report)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _remove_stale_images(out_dir: str, keep: set) -> None:
    """Drop an earlier subset's images: the folder holds only this one."""
    for dirpath, _, filenames in os.walk(out_dir):
        for fname in filenames:
            full = osp.join(dirpath, fname)
            rel = osp.relpath(full, out_dir).replace(os.sep, '/')
            if fname.lower().endswith(IMG_EXTENSIONS) and rel not in keep:
                os.remove(full)
