"""Image files: which extensions are images, and finding them in folders.

mmengine's ``list_dir_or_file``, plus: extensions in any case, hidden files
and folders left out, sorted (the same tree always gives the same samples).
"""
import os
import os.path as osp
from typing import List, Tuple

from mmengine.fileio import list_dir_or_file
from mmpretrain.datasets import ImageNet

from .errors import DataError

# mmpretrain's list plus the formats microscope software writes that OpenCV
# and PIL decode.
IMG_EXTENSIONS = tuple(ImageNet.IMG_EXTENSIONS) + ('.tiff', '.webp', '.pbm',
                                                   '.jp2')


def is_image_file(path: str) -> bool:
    """Whether ``path`` names an image by its extension (any case)."""
    return path.lower().endswith(IMG_EXTENSIONS)


def _visible_files(folder: str) -> List[str]:
    """Relative paths (``/``-separated, sorted) of the non-hidden files."""
    rels = (rel.replace(os.sep, '/') for rel in
            list_dir_or_file(folder, list_dir=False, recursive=True))
    return sorted(rel for rel in rels
                  if not any(part.startswith('.') for part in rel.split('/')))


def list_images(folder: str) -> List[str]:
    """The image files under ``folder`` (recursively, sorted), as
    ``folder``-joined paths; NotADirectoryError if it is not a folder."""
    if not osp.isdir(folder):
        raise NotADirectoryError(f'{folder}: not a folder')
    return [osp.join(folder, rel) for rel in _visible_files(folder)
            if is_image_file(rel)]


def scan_class_tree(root: str
                    ) -> Tuple[List[str], List[Tuple[str, int]], List[str]]:
    """List a folder-per-class tree ``root``, every class, even empty ones.

    Returns:
        tuple: ``(sorted class names, [(image path, label), ...], [non-image
        paths])``, paths ``/``-separated and relative to ``root``.

    Raises:
        DataError: ``root`` is missing or has no class sub-folders.
    """
    if not osp.isdir(root):
        raise DataError('data folder not found', root)
    classes = sorted(d for d in list_dir_or_file(root, list_file=False)
                     if not d.startswith('.'))
    if not classes:
        raise DataError('no class sub-folders (expected one folder per class)',
                        root)
    samples, others = [], []
    for label, name in enumerate(classes):
        for rel in _visible_files(osp.join(root, name)):
            if is_image_file(rel):
                samples.append((f'{name}/{rel}', label))
            else:
                others.append(f'{name}/{rel}')
    return classes, samples, others


def scan_class_folders(root: str
                       ) -> Tuple[List[str], List[Tuple[str, int]]]:
    """:func:`scan_class_tree` for a dataset, where a class with no images is
    an error (it could be neither trained nor validated).

    Returns:
        tuple: ``(sorted class names, [(relative image path, label), ...])``.
    """
    classes, samples, _ = scan_class_tree(root)
    found = {label for _, label in samples}
    for label, name in enumerate(classes):
        if label not in found:
            raise DataError(f'class {name!r} has no images',
                            osp.join(root, name))
    return classes, samples
