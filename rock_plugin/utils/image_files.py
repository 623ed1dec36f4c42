"""Image files: which extensions are images, and finding them in folders.

The one home of both, for the dataset, the checks, the inferencer and the
benchmark. Listing uses mmengine's ``list_dir_or_file`` (what mmpretrain's
``CustomDataset`` walks with); on top of it, names are matched without regard
to case (``.JPG``), hidden files and folders (``.ipynb_checkpoints``,
macOS ``._x.jpg``) are left out, and the order is sorted, so the same tree
always gives the same samples.
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
    """Whether ``path`` names an image by its extension (any case).

    Example:
        >>> is_image_file('Chert/a.JPG'), is_image_file('notes.txt')
        (True, False)
    """
    return path.lower().endswith(IMG_EXTENSIONS)


def _visible_files(folder: str) -> List[str]:
    """Relative paths (``/``-separated, sorted) of the non-hidden files."""
    found = []
    for rel in list_dir_or_file(folder, list_dir=False, recursive=True):
        rel = rel.replace(os.sep, '/')
        if not any(part.startswith('.') for part in rel.split('/')):
            found.append(rel)
    return sorted(found)


def list_images(folder: str) -> List[str]:
    """The image files under ``folder``, recursively, in sorted order.

    Args:
        folder (str): The folder to scan.

    Returns:
        list[str]: ``folder``-joined paths.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.

    Example:
        >>> list_images('data/rocks/Chert')[:1]
        ['data/rocks/Chert/Chert1_01.jpg']
    """
    if not osp.isdir(folder):
        raise NotADirectoryError(f'{folder}: not a folder')
    return [osp.join(folder, rel) for rel in _visible_files(folder)
            if is_image_file(rel)]


def scan_class_tree(root: str
                    ) -> Tuple[List[str], List[Tuple[str, int]], List[str]]:
    """List a folder-per-class tree, every class, even empty ones.

    Args:
        root (str): Folder holding one sub-folder per class (the class names).

    Returns:
        tuple: ``(sorted class names, [(relative image path, label), ...],
        [relative paths of the non-image files])``; paths use ``/`` and are
        relative to ``root``.

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
    """:func:`scan_class_tree` for a dataset: a class with no images is an
    error (it could be neither trained nor validated).

    Returns:
        tuple: ``(sorted class names, [(relative image path, label), ...])``.

    Example:
        >>> classes, samples = scan_class_folders('demo/rock_thin_sections')
    """
    classes, samples, _ = scan_class_tree(root)
    found = {label for _, label in samples}
    for label, name in enumerate(classes):
        if label not in found:
            raise DataError(f'class {name!r} has no images',
                            osp.join(root, name))
    return classes, samples
