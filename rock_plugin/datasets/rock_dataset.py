"""``RockDataset``: the original project's data formats as an mmpretrain dataset."""
import logging
import os.path as osp
from collections import Counter
from typing import List, Optional, Sequence, Union

from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from rock_plugin.utils.errors import DataError
from rock_plugin.utils.image_files import scan_class_folders
from .annotations import load_annotations, load_classes
from .epoch_seeded_sampler import SeededAugmentMixin
from .split import content_groups, default_fold, stratified_fold_split


@DATASETS.register_module()
class RockDataset(SeededAugmentMixin, BaseDataset):
    """Rock images from annotation files or a folder per class.

    Two layouts are read:

    * ``ann_file`` given: the original ``<image path> <label>`` lines (label
      last, so paths may hold spaces; ``/`` or ``\\``; paths relative to
      ``data_root``/``data_prefix`` or absolute) with class names from
      ``classes`` (the original ``annotations.txt`` with ``Name index`` lines,
      or one name a line; a path relative to ``data_root`` is accepted).
    * ``ann_file`` empty: ``data_root/data_prefix/<class>/**/<image>``, class
      names from the folder names (sorted) unless ``classes`` is given.

    ``split='train'`` / ``'val'`` carves a stratified validation fold out of
    the samples (the original ``--split-validation``): the same ``split_seed``,
    ``val_ratio`` and ``fold`` always give the same, non-overlapping parts,
    and byte-identical copies of one image always land in the same part.

    An image listed twice in ``ann_file`` is read once (with a warning; twice
    with different labels is an error), at least two classes are required,
    and a validation set missing a class gets a warning naming it.

    Args:
        data_root (str): Root of images, annotation and classes files.
        ann_file (str): Annotation file; empty for a folder per class.
        classes (str | Sequence[str], optional): Classes file or names.
        data_prefix (str): Sub-folder of ``data_root`` that image paths are
            relative to. Defaults to ''.
        split (str, optional): ``None`` (all samples), ``'train'`` or
            ``'val'``.
        val_ratio (float): Fraction of each class in the validation fold.
        fold (int, optional): Validation fold index in ``[0, int(1/ratio))``;
            defaults to one derived from ``split_seed``.
        split_seed (int): Shuffle seed of the split.
        check_files (bool): Check at start that every image exists, so a typo
            fails at once with its file and line instead of mid-epoch.
        skip_bad_images (bool): Opt-in for messy folders: decode every image
            at start and leave out missing, corrupt and non-image files with a
            warning each and a count, instead of failing on the first one.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``...).

    Example:
        >>> ds = RockDataset(data_root='data/rocks', ann_file='train.txt',
        ...                  classes='annotations.txt', split='val',
        ...                  val_ratio=0.2, split_seed=42)
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
            raise ValueError(f"split must be None, 'train' or 'val', got {split!r}")
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
        metainfo = dict(metainfo or {}, classes=tuple(class_names))
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            metainfo=metainfo,
            **kwargs)

    def _resolve_classes(self, data_root, ann_file, data_prefix, classes
                         ) -> List[str]:
        if isinstance(classes, str):
            path = classes
            if not osp.isabs(path) and not osp.isfile(path):
                path = osp.join(data_root, path)
            if not osp.isfile(path):
                raise DataError(
                    'classes file not found (set `classes` to a file with one '
                    'name a line, or to a list of names)', path)
            return load_classes(path)
        if classes is not None:
            names = [str(c) for c in classes]
            dup = {c for c in names if names.count(c) > 1}
            if dup or any(not c.strip() for c in names):
                raise DataError(f'classes must be unique, non-empty names; got '
                                f'{names}')
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
        """Read all samples, then keep this split's part.

        Returns:
            list[dict]: ``img_path``, ``gt_label`` (and ``ann_line``).
        """
        classes = self.metainfo['classes']
        if self.ann_file:
            data_list = self._load_listed(len(classes))
        else:
            samples = self._folder_samples
            if samples is None:
                folder_classes, samples = scan_class_folders(self.img_prefix)
                remap = {}
                for name in folder_classes:
                    if name not in classes:
                        raise DataError(
                            f'folder {name!r} is not among the given classes '
                            f'{list(classes)}', self.img_prefix)
                    remap[folder_classes.index(name)] = list(classes).index(name)
                samples = [(p, remap[lbl]) for p, lbl in samples]
            data_list = [
                dict(img_path=osp.join(self.img_prefix, p), gt_label=lbl)
                for p, lbl in samples
            ]
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
            self._warn_unvalidated(data_list, counts)
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
        copies = Counter(groups)
        names = self.metainfo['classes']
        for group, n in copies.items():
            if n < 2:
                continue
            members = [i for i, g in enumerate(groups) if g == group]
            labels = sorted({names[data_list[i]['gt_label']]
                             for i in members})
            self._warn(
                f'{n} files are copies of one image, kept on one side of the '
                f'split: {", ".join(paths[i] for i in members)}'
                + (f' (under different classes: {labels})'
                   if len(labels) > 1 else ''))
        return groups

    def _warn(self, message: str) -> None:
        # The val split reads the same files as the train split, which has
        # already said it.
        if self.split != 'val':
            print_log(message, logger='current', level=logging.WARNING)

    def _warn_unvalidated(self, data_list: List[dict], counts: Counter):
        present = {d['gt_label'] for d in data_list}
        for label, name in enumerate(self.metainfo['classes']):
            if label in present:
                continue
            where = (f'in validation fold {self.fold} ({counts[label]} '
                     'image(s) in all)' if self.split == 'val' else
                     f'in {self.ann_file or self.img_prefix}')
            print_log(
                f'class {name!r} has no image {where}: it is never validated '
                'and counts as 0 in the macro-averaged precision, recall and '
                'F1; add images of it', logger='current',
                level=logging.WARNING)

    def _drop_unreadable(self, data_list: List[dict]) -> List[dict]:
        from concurrent.futures import ThreadPoolExecutor

        from .transforms import read_rgb

        def bad(info):
            try:
                read_rgb(info['img_path'])
            except DataError as exc:
                return str(exc)
            return None

        with ThreadPoolExecutor(4) as pool:
            problems = list(pool.map(bad, data_list))
        kept = []
        for info, problem in zip(data_list, problems):
            if problem is None:
                kept.append(info)
            else:
                self.skipped_images.append(info['img_path'])
                print_log(f'skipping unreadable image: {problem}',
                          logger='current', level=logging.WARNING)
        if self.skipped_images:
            print_log(f'RockDataset: skipped {len(self.skipped_images)} '
                      f'unreadable image(s) of {len(data_list)}',
                      logger='current', level=logging.WARNING)
        return kept

    def extra_repr(self) -> List[str]:
        body = [f'Annotation file: {self.ann_file or "(folder per class)"}',
                f'Prefix of images: {self.img_prefix}']
        if self.split is not None:
            body.append(f'Split: {self.split}, fold {self.fold}, ratio '
                        f'{self.val_ratio}, seed {self.split_seed}')
        return body
