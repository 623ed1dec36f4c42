"""``RockDataset``: the original project's data as an mmpretrain dataset."""
import logging
import os.path as osp
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Union

from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from rock_plugin.utils.errors import DataError
from rock_plugin.utils.image_files import scan_class_folders
from .annotations import load_annotations, load_classes
from .samplers.epoch_seeded_sampler import SeededAugmentMixin
from .split import content_groups, default_fold, stratified_fold_split
from .transforms import read_rgb


@DATASETS.register_module()
class RockDataset(SeededAugmentMixin, BaseDataset):
    """Rock images from annotation files or a folder per class.

    ``ann_file`` holds the original ``<image path> <label>`` lines; without
    it, ``data_root/data_prefix/<class>/**/<image>`` is read. ``split``
    carves out a stratified validation fold (``--split-validation``).

    Args:
        data_root (str): Root of images, annotation and classes files.
        ann_file (str): Annotation file; empty for a folder per class.
        classes (str | Sequence[str], optional): Classes file or names.
        data_prefix (str): Sub-folder of ``data_root`` holding the images.
        split (str, optional): ``None`` (all), ``'train'`` or ``'val'``.
        val_ratio (float): Fraction of each class in the validation fold.
        fold (int, optional): Validation fold; derived from ``split_seed``.
        split_seed (int): Shuffle seed of the split.
        check_files (bool): Check at start that every listed image exists.
        skip_bad_images (bool): Warn about unreadable images, not fail.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`.

    Example:
        >>> ds = RockDataset(data_root='data/rocks', ann_file='train.txt',
        ...                  classes='annotations.txt', split='val')
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 classes: Union[str, Sequence[str], None] = None,
                 data_prefix: str = '',
                 split: Optional[str] = None,
                 val_ratio: float = 0.2,
                 fold: Optional[int] = None,
                 split_seed: Optional[int] = 0,
                 check_files: bool = True,
                 skip_bad_images: bool = False,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in (None, 'train', 'val'):
            raise ValueError(
                f"split must be None, 'train' or 'val', got {split!r}")
        self.split = split
        self.val_ratio = val_ratio
        self.split_seed = split_seed
        self.fold = (default_fold(split_seed, val_ratio)
                     if split is not None and fold is None else fold)
        self.check_files = check_files
        self.skip_bad_images = skip_bad_images
        self.skipped_images: List[str] = []
        self._folder_samples = None
        class_names = self._resolve_classes(data_root, ann_file, data_prefix,
                                            classes)
        if len(class_names) < 2:
            raise DataError(
                f'only one class ({class_names[0]!r}): a classifier needs at '
                'least two (it would score 100 % while learning nothing)',
                ann_file or osp.join(data_root, data_prefix))
        super().__init__(
            ann_file=ann_file, data_root=data_root, data_prefix=data_prefix,
            metainfo=dict(metainfo or {}, classes=tuple(class_names)),
            **kwargs)

    @classmethod
    def class_names(cls, data_root: str = '', ann_file: str = '',
                    classes: Union[str, Sequence[str], None] = None,
                    data_prefix: str = '', **kwargs) -> List[str]:
        """The class names a dataset of these settings has, found as
        :class:`RockDataset` finds them (classes file or list, else the
        sub-folders), without reading an image.

        Args:
            data_root, ann_file, classes, data_prefix: As the constructor;
                other keyword arguments are ignored.

        Returns:
            list[str]: The names, in label order.

        Example:
            >>> RockDataset.class_names(data_root='demo/rock_thin_sections')
            ['AnhydriteRock', 'Bauxite', ...]
        """
        return cls.__new__(cls)._resolve_classes(data_root, ann_file,
                                                 data_prefix, classes)

    def _resolve_classes(self, data_root, ann_file, data_prefix, classes
                         ) -> List[str]:
        if isinstance(classes, str):
            path = classes
            if not osp.isfile(path):  # then relative to data_root
                path = osp.join(data_root, path)
            if not osp.isfile(path):
                raise DataError(
                    'classes file not found (set `classes` to a file with one '
                    'name a line, or to a list of names)', path)
            return load_classes(path)
        if classes is not None:
            names = [str(c) for c in classes]
            if len(set(names)) < len(names) or not all(map(str.strip, names)):
                raise DataError('classes must be unique, non-empty names; '
                                f'got {names}')
            return names
        if ann_file:
            raise DataError(
                'an annotation file needs class names: set `classes` to the '
                'classes file (e.g. annotations.txt)', ann_file)
        folder_classes, samples = scan_class_folders(
            osp.join(data_root, data_prefix))
        self._folder_samples = samples
        return folder_classes

    def load_data_list(self) -> List[dict]:
        """Read all samples (``img_path``, ``gt_label``, with ``ann_file``
        also ``ann_line``), then keep this split's part."""
        classes = self.metainfo['classes']
        if self.ann_file:
            data_list = self._load_listed(len(classes))
        else:
            samples = self._folder_samples
            if samples is None:
                folder_classes, samples = scan_class_folders(self.img_prefix)
                for name in folder_classes:
                    if name not in classes:
                        raise DataError(
                            f'folder {name!r} is not among the given classes '
                            f'{list(classes)}', self.img_prefix)
                samples = [(p, classes.index(folder_classes[lbl]))
                           for p, lbl in samples]
            data_list = [dict(img_path=osp.join(self.img_prefix, p),
                              gt_label=lbl) for p, lbl in samples]
        source = self.ann_file or self.img_prefix
        if self.skip_bad_images:
            data_list = self._drop_unreadable(data_list)
        if not data_list:
            raise DataError('the dataset is empty (no samples)', source)
        counts = Counter(d['gt_label'] for d in data_list)
        if self.split is not None:
            train_idx, val_idx = stratified_fold_split(
                [d['gt_label'] for d in data_list], self.val_ratio, self.fold,
                self.split_seed, groups=self._copy_groups(data_list))
            keep = train_idx if self.split == 'train' else val_idx
            data_list = [data_list[i] for i in keep]
            print_log(
                f'RockDataset split={self.split}: fold {self.fold} of '
                f'{int(1 / self.val_ratio)} (ratio {self.val_ratio}, seed '
                f'{self.split_seed}), {len(data_list)} samples',
                logger='current')
            if not data_list:
                raise DataError(f'the {self.split} split is empty', source)
        if self.split == 'val' or (self.split is None and self.test_mode):
            present = {d['gt_label'] for d in data_list}
            for label, name in enumerate(classes):
                if label in present:
                    continue
                where = (f'in validation fold {self.fold} ({counts[label]} '
                         'image(s) in all)' if self.split == 'val' else
                         f'in {source}')
                self._warn(
                    f'class {name!r} has no image {where}: it is never '
                    'validated and counts as 0 in the macro-averaged '
                    'precision, recall and F1; add images of it', always=True)
        return data_list

    def _load_listed(self, num_classes: int) -> List[dict]:
        """The samples of ``ann_file``, each image once."""
        data_list, first = [], {}
        for path, label, lineno in load_annotations(self.ann_file,
                                                    num_classes=num_classes):
            img_path = osp.join(self.img_prefix, path)
            key = osp.normpath(img_path)
            if key in first:
                earlier = first[key]
                if earlier['gt_label'] != label:
                    raise DataError(
                        f'{path} is listed again with label {label}, but '
                        f'line {earlier["ann_line"]} gives it label '
                        f'{earlier["gt_label"]}', self.ann_file, lineno)
                # A second copy would weigh the image twice, and the split
                # could put one copy in each part.
                self._warn(f'{self.ann_file}:{lineno}: {path} is already '
                           f'listed on line {earlier["ann_line"]}; read once')
                continue
            if self.check_files and not self.skip_bad_images and \
                    not osp.isfile(img_path):
                raise DataError(f'image not found: {img_path}',
                                self.ann_file, lineno)
            first[key] = dict(img_path=img_path, gt_label=label,
                              ann_line=lineno, ann_file=self.ann_file)
            data_list.append(first[key])
        return data_list

    def _copy_groups(self, data_list: List[dict]) -> List[str]:
        """Split groups: byte-identical files share one (with a warning)."""
        paths = [d['img_path'] for d in data_list]
        groups = content_groups(paths)
        names = self.metainfo['classes']
        for group, n in Counter(groups).items():
            if n < 2:
                continue
            members = [i for i, g in enumerate(groups) if g == group]
            labels = sorted({names[data_list[i]['gt_label']] for i in members})
            self._warn(
                f'{n} files are copies of one image, kept on one side of the '
                f'split: {", ".join(paths[i] for i in members)}'
                + (f' (under different classes: {labels})'
                   if len(labels) > 1 else ''))
        return groups

    def _warn(self, message: str, always: bool = False) -> None:
        # Unless `always`, quiet for val: the train split has said it.
        if always or self.split != 'val':
            print_log(message, logger='current', level=logging.WARNING)

    def _drop_unreadable(self, data_list: List[dict]) -> List[dict]:
        def bad(info):
            try:
                read_rgb(info['img_path'])
            except DataError as exc:
                return str(exc)
            return None
        with ThreadPoolExecutor(4) as pool:
            problems = list(pool.map(bad, data_list))
        for info, problem in zip(data_list, problems):
            if problem is not None:
                self.skipped_images.append(info['img_path'])
                self._warn(f'skipping unreadable image: {problem}', True)
        if self.skipped_images:
            self._warn(f'RockDataset: skipped {len(self.skipped_images)} '
                       f'unreadable image(s) of {len(data_list)}', True)
        return [d for d, bad in zip(data_list, problems) if bad is None]

    def extra_repr(self) -> List[str]:
        body = [f'Annotation file: {self.ann_file or "(folder per class)"}',
                f'Prefix of images: {self.img_prefix}']
        if self.split is not None:
            body.append(f'Split: {self.split}, fold {self.fold}, ratio '
                        f'{self.val_ratio}, seed {self.split_seed}')
        return body
