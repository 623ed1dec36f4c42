"""Check a rock dataset before training, every image decoded once: corrupt
files otherwise fail mid-epoch, and a photo filed twice leaks between train
and test. Odd modes (grayscale, CMYK, 16-bit) are valid, only noted.

Used by the tools of ``tools/dataset/`` (offline jobs, not the package).
"""
import hashlib
import io
import os
import os.path as osp
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Set, Tuple

from PIL import Image, UnidentifiedImageError

from rock_plugin.utils.errors import DataError
from rock_plugin.utils.image_files import scan_class_tree

# Every problem kind, worst first (the order problems are listed in), and
# what it means; the first four are unusable files, left out of a split.
_KIND_HELP = {
    'missing': 'listed but not found',
    'not_image': 'not an image file',
    'truncated': 'truncated image data',
    'corrupt': 'image cannot be decoded',
    'label_conflict': 'same image in another class',
    'duplicate': 'same image twice in one class',
    'too_small': 'image too small',
    'too_few_images': 'class with too few usable images',
}
PROBLEM_KINDS = tuple(_KIND_HELP)
UNUSABLE_KINDS = PROBLEM_KINDS[:4]


@dataclass
class Problem:
    """One thing wrong with the dataset.

    Args:
        kind (str): One of :data:`PROBLEM_KINDS`.
        path (str): The image (as listed) or, for a class, its name.
        detail (str): What exactly, in words.
        label (int, optional): The class concerned, when there is one.
    """
    kind: str
    path: str
    detail: str = ''
    label: Optional[int] = None


@dataclass
class ImageInfo:
    """What decoding one listed image found: ``status`` is ``'ok'`` or an
    unusable kind (``detail`` the decoder's message); ``size`` is ``(w, h)``,
    ``mode`` / ``format`` PIL's, ``sha256`` the hash of the file's bytes."""
    path: str
    label: int
    status: str = 'ok'
    detail: str = ''
    size: Optional[Tuple[int, int]] = None
    mode: Optional[str] = None
    format: Optional[str] = None
    sha256: Optional[str] = None


@dataclass
class DatasetReport:
    """Per-class counts and problems of a dataset.

    Args:
        class_names (list[str]): Names in label order.
        counts (list[int]): Images listed per class.
        usable_counts (list[int]): Per class, without the excluded ones.
        problems (list[Problem]): Everything found, worst kind first.
        images (list[ImageInfo]): One entry per listed sample, in order.
        excluded (set[int]): Indices of samples a split should leave out.
        duplicate_groups (list[list[str]]): Paths with identical bytes.
        root (str, optional): Folder the paths are relative to.
        split_counts (dict): Extra count columns, e.g. ``{'train': [...]}``.
        skipped (list[str]): Files ignored for their extension.
    """
    class_names: List[str]
    counts: List[int]
    usable_counts: List[int]
    problems: List[Problem] = field(default_factory=list)
    images: List[ImageInfo] = field(default_factory=list)
    excluded: Set[int] = field(default_factory=set)
    duplicate_groups: List[List[str]] = field(default_factory=list)
    root: Optional[str] = None
    split_counts: Dict[str, List[int]] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def modes(self) -> Dict[str, int]:
        """How many decodable images have each PIL mode."""
        return dict(Counter(i.mode for i in self.images if i.mode))

    def problem_counts(self) -> Dict[str, int]:
        """Number of problems of each kind, in :data:`PROBLEM_KINDS` order."""
        found = Counter(p.kind for p in self.problems)
        return {k: found[k] for k in PROBLEM_KINDS if found[k]}

    def format_table(self, title: str = 'Images per class') -> str:
        """The per-class counts (and :attr:`split_counts`) as a rich table,
        with a total row."""
        from rich.console import Console
        from rich.table import Table
        per_class = Counter(p.label for p in self.problems)
        table = Table(title=title)
        columns = [self.counts, self.usable_counts,
                   *self.split_counts.values()]
        for col in ('Label', 'Class', 'Listed', 'Usable', *self.split_counts,
                    'Problems'):
            table.add_column(col, justify='right' if col != 'Class' else
                             'left')
        for idx, name in enumerate(self.class_names):
            table.add_row(str(idx), name, *(str(c[idx]) for c in columns),
                          str(per_class[idx] or ''))
        table.add_row('', 'total', *(str(sum(c)) for c in columns),
                      str(len(self.problems) or ''))
        buf = io.StringIO()
        Console(file=buf, width=120, color_system=None).print(table)
        return buf.getvalue()

    def format_problems(self, limit: int = 20) -> str:
        """The problems grouped by kind, at most ``limit`` listed per kind
        (the rest counted), then the image modes seen."""
        n = len(self.images)
        where = f' under {self.root}' if self.root else ''
        lines = []
        if not self.problems:
            lines.append(f'No problems found in {n} images{where}.')
        else:
            summary = ', '.join(f'{k} {c}'
                                for k, c in self.problem_counts().items())
            lines.append(f'{len(self.problems)} problem(s) in {n} images'
                         f'{where}: {summary}')
            for kind in self.problem_counts():
                found = [p for p in self.problems if p.kind == kind]
                lines.append(f'{kind} ({_KIND_HELP[kind]}):')
                lines += [f'  {p.path}' + (f': {p.detail}' if p.detail else '')
                          for p in found[:limit]]
                if len(found) > limit:
                    lines.append(f'  ... and {len(found) - limit} more')
        modes = ', '.join(f'{m} {c}' for m, c in sorted(self.modes.items()))
        if set(self.modes) - {'RGB'}:
            lines.append('Image modes (all valid, loaded as colour): ' + modes)
        if self.skipped:
            lines.append(f'Ignored {len(self.skipped)} file(s) without an '
                         f'image extension, e.g. {self.skipped[0]}')
        return '\n'.join(lines)


def check_class_tree(root: str,
                     min_size: int = 32,
                     min_per_class: int = 2,
                     workers: Optional[int] = None) -> DatasetReport:
    """:func:`check_images` on a folder-per-class tree ``root`` (empty
    class folders are reported): ``images`` lists the samples found,
    sorted, ``skipped`` the files ignored for their extension."""
    classes, samples, skipped = scan_class_tree(root)
    return replace(check_images(
        samples, root=root, min_size=min_size, min_per_class=min_per_class,
        class_names=classes, workers=workers), skipped=skipped)


def inspect_image(path: str) -> ImageInfo:
    """Read one file, hash its bytes and decode it fully (``label`` -1);
    PIL's ``LOAD_TRUNCATED_IMAGES`` must stay False to catch truncation."""
    if not osp.isfile(path):
        return ImageInfo(path, -1, 'missing', 'file not found')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        return ImageInfo(path, -1, 'corrupt', f'cannot read: {exc}')
    info = ImageInfo(path, -1, sha256=hashlib.sha256(data).hexdigest())
    if not data:
        info.status, info.detail = 'not_image', 'empty file (0 bytes)'
        return info
    try:
        with Image.open(io.BytesIO(data)) as img:
            info.format, info.mode, info.size = img.format, img.mode, img.size
            img.load()
    except UnidentifiedImageError:
        info.status = 'not_image'
        info.detail = f'not a known image format (starts with {data[:8]!r})'
    except Exception as exc:  # noqa: BLE001  (any decoder error is "corrupt")
        message = str(exc) or type(exc).__name__
        info.status = 'truncated' if 'truncated' in message.lower() \
            else 'corrupt'
        info.detail = f'{info.format or "image"} decoding failed: {message}'
    return info


def check_images(samples: Sequence[Tuple],
                 root: Optional[str] = None,
                 min_size: int = 32,
                 min_per_class: int = 2,
                 class_names: Optional[Sequence[str]] = None,
                 workers: Optional[int] = None) -> DatasetReport:
    """Decode every image and report what would break or skew training.

    Args:
        samples (Sequence[tuple]): ``(path, label)`` or ``(path, label,
            origin)``, ``origin`` (e.g. ``'train.txt:12'``) quoted in messages.
        root (str, optional): Folder of relative paths.
        min_size (int): Smallest acceptable shorter side, in pixels.
        min_per_class (int): Fewest usable images a class may have.
        class_names (Sequence[str], optional): Names in label order.
        workers (int, optional): Decoding threads; ``min(8, CPUs)`` if None.

    Returns:
        DatasetReport: ``excluded`` holds the unusable samples, all but the
        first copy of a duplicate and every copy of a label conflict.

    Example:
        >>> report = check_images([('Chert/1.jpg', 0)], root='data/rocks')
        >>> print(report.format_table(), report.format_problems())
    """
    labels = [int(s[1]) for s in samples]
    class_names = list(class_names) if class_names is not None else [
        str(i) for i in range(max(labels, default=-1) + 1)]
    for (path, *_), lbl in zip(samples, labels):
        if not 0 <= lbl < len(class_names):
            raise DataError(f'label {lbl} out of range for {len(class_names)} '
                            'classes', path)
    full = [s[0] if root is None or osp.isabs(s[0]) else osp.join(root, s[0])
            for s in samples]
    # One decode per distinct file, even when a path is listed twice.
    paths = list(dict.fromkeys(full))
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        found = dict(zip(paths, pool.map(inspect_image, paths)))
    origins = [s[2] if len(s) > 2 else None for s in samples]
    at = [f' [{o}]' if o else '' for o in origins]  # appended to details
    files = [o.rsplit(':', 1)[0] if o else o for o in origins]
    images, problems, excluded = [], [], set()
    for idx, ((path, *_), lbl) in enumerate(zip(samples, labels)):
        info = replace(found[full[idx]], path=path, label=lbl)
        images.append(info)
        if info.status != 'ok':
            problems.append(Problem(info.status, path,
                                    info.detail + at[idx], lbl))
            excluded.add(idx)
        elif min(info.size) < min_size:
            problems.append(Problem(
                'too_small', path, f'{info.size[0]}x{info.size[1]} px, '
                f'shorter side below {min_size}{at[idx]}', lbl))
    groups = defaultdict(list)
    for idx, info in enumerate(images):
        # Unusable files are reported and left out already; an empty or
        # garbage file shared by many paths is not a "duplicate photo".
        if info.status == 'ok':
            groups[info.sha256].append(idx)
    duplicate_groups = []
    for members in groups.values():
        if len(members) < 2:
            continue
        duplicate_groups.append([images[i].path for i in members])
        labels_in = {images[i].label for i in members}
        if len(labels_in) > 1:
            # Which class is right is unknown: every copy is left out.
            names = sorted(class_names[lbl] for lbl in labels_in)
            for i in members:
                others = [images[j].path + at[j] for j in members if j != i]
                problems.append(Problem(
                    'label_conflict', images[i].path,
                    f'in {class_names[images[i].label]!r}'
                    f'{at[i]}, but the same image is '
                    f'{", ".join(others)}; classes {names}',
                    images[i].label))
                excluded.add(i)
            continue
        first = members[0]
        for i in members[1:]:
            if images[i].path == images[first].path:
                detail = 'listed twice'
                if origins[first]:
                    detail += f' (first at {origins[first]})'
            else:
                detail = 'same bytes as ' + images[first].path + at[first]
            if origins[i] and origins[first] and files[i] != files[first]:
                detail += '; in two annotation files, so one split leaks ' \
                          'into the other'
            problems.append(Problem('duplicate', images[i].path,
                                    detail + at[i], images[i].label))
            excluded.add(i)
    listed = Counter(labels)
    kept = Counter(lbl for i, lbl in enumerate(labels) if i not in excluded)
    counts = [listed[i] for i in range(len(class_names))]
    usable = [kept[i] for i in range(len(class_names))]
    for lbl, name in enumerate(class_names):
        if usable[lbl] < min_per_class:
            problems.append(Problem(
                'too_few_images', name,
                f'{usable[lbl]} usable image(s) of {counts[lbl]} listed; '
                f'need at least {min_per_class}', lbl))
    problems.sort(key=lambda p: PROBLEM_KINDS.index(p.kind))
    return DatasetReport(class_names=class_names, counts=counts,
                         usable_counts=usable, problems=problems,
                         images=images, excluded=excluded,
                         duplicate_groups=duplicate_groups, root=root)
