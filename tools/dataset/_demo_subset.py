"""A small, downscaled copy (or subset) of a folder-per-class dataset, as
the bundled ``demo/rock_thin_sections`` was built: the work of
``tools/dataset/make_demo_subset.py``."""
import io
import os
import os.path as osp
import random
from typing import Dict, List, Optional

import numpy as np
from PIL import Image, ImageOps

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.errors import DataError
from rock_plugin.utils.image_files import is_image_file, scan_class_folders

# Sibling modules: tools/dataset/ is on sys.path when its tools run.
from _checks import check_images
from _prepare import _inside

MIB = 1024 * 1024


def pick_per_class(paths: List[str], per_class: Optional[int], seed: int,
                   class_name: str) -> List[str]:
    """``per_class`` (None: all) of one class's ``paths``, sorted, drawn
    with a generator seeded by ``seed`` and the class name, so that other
    classes never change the choice."""
    if per_class is None or per_class >= len(paths):
        return sorted(paths)
    # A str seed is hashed with SHA-512: stable across runs, platforms and
    # PYTHONHASHSEED.
    rng = random.Random(f'{seed}/{class_name}')
    return sorted(rng.sample(sorted(paths), per_class))


def downscale_jpeg(path: str, size: int = 224, quality: int = 85) -> bytes:
    """The JPEG bytes of ``path``, shorter side at most ``size`` (never
    enlarged), EXIF orientation applied, 16-bit scaled, metadata dropped.

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
    """Write a downscaled ``.jpg`` copy (or subset) of a folder-per-class
    dataset; encoded in memory first, so nothing is written over ``max_mb``.

    Args:
        src (str): Folder with one sub-folder per class.
        out_dir (str): Output folder, with the same class folders.
        per_class (int, optional): Images per class; None keeps all.
        size (int): Shorter side of the output images (never enlarged).
        quality (int): JPEG quality, 1-95.
        seed (int): Seed of the choice of images.
        max_mb (float): Largest total size of the images in MiB.
        overwrite (bool): Allow a non-empty ``out_dir`` (stale images go).

    Returns:
        dict: ``files`` (paths written), ``bytes`` (their total size),
        ``per_class`` (count per class), ``sizes`` (set of ``(w, h)``) and
        ``report`` (the source's :class:`DatasetReport`).
    """
    if per_class is not None and per_class < 1:
        raise ValueError(f'per_class must be at least 1, got {per_class}')
    if size < 1:
        raise ValueError(f'size must be at least 1, got {size}')
    if not 1 <= quality <= 95:
        raise ValueError(f'quality must be in [1, 95], got {quality}')
    if _inside(out_dir, src) or _inside(src, out_dir):  # real paths
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
    # Drop an earlier subset's images: the folder holds only this one.
    for dirpath, _, filenames in os.walk(out_dir) if overwrite else ():
        for fname in filenames:
            full = osp.join(dirpath, fname)
            rel = osp.relpath(full, out_dir).replace(os.sep, '/')
            if is_image_file(fname) and rel not in encoded:
                os.remove(full)
    return dict(files=written, bytes=total, per_class=per_count,
                sizes=sizes, report=report)
