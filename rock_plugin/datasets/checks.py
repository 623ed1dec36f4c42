"""Check a rock dataset before training: every image decoded once, up front.

A corrupt or truncated JPEG otherwise fails (or is silently skipped) in the
middle of an epoch, a text file renamed ``.jpg`` only shows up as a decoder
error, and the same photo filed twice (or under two classes) leaks between the
train and test parts and inflates the scores. :func:`check_images` finds these
before anything is written or trained; :class:`DatasetReport` holds the
per-class counts and the problems, and renders both for a terminal.

Problem kinds (``Problem.kind``):

* ``missing``: the file listed does not exist;
* ``not_image``: not an image at all (e.g. a text file named ``.jpg``, an
  empty file);
* ``truncated``: an image whose data ends early (an interrupted copy);
* ``corrupt``: any other decoding error;
* ``duplicate``: the same bytes as an earlier image of the same class;
* ``label_conflict``: the same bytes as an image of another class;
* ``too_small``: the shorter side is below ``min_size`` pixels;
* ``too_few_images``: a class with fewer than ``min_per_class`` usable images
  (zero included).

Grayscale (``L``), CMYK, 16-bit (``I;16``) and RGBA images are valid: the
loader converts them to 3-channel colour, so their modes are only noted.
"""
import hashlib
import io
import os
import os.path as osp
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from PIL import Image, UnidentifiedImageError

from rock_plugin.utils.errors import DataError
from rock_plugin.utils.image_files import scan_class_tree  # noqa: F401

# Kinds whose files cannot be used at all: they are left out of a split.
UNUSABLE_KINDS = ('missing', 'not_image', 'truncated', 'corrupt')
# In the order problems are listed: the worst first.
PROBLEM_KINDS = UNUSABLE_KINDS + ('label_conflict', 'duplicate', 'too_small',
                                  'too_few_images')
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

    def __str__(self) -> str:
        return f'[{self.kind}] {self.path}' + (
            f': {self.detail}' if self.detail else '')


@dataclass
class ImageInfo:
    """What was found when decoding one listed image.

    Args:
        path (str): The path as listed.
        label (int): Its label.
        status (str): ``'ok'`` or an unusable problem kind.
        detail (str): The decoder's message when not ``'ok'``.
        size (tuple, optional): ``(width, height)``.
        mode (str, optional): PIL mode (``RGB``, ``L``, ``CMYK``...).
        format (str, optional): PIL format (``JPEG``, ``PNG``...).
        sha256 (str, optional): Hash of the file's bytes.
    """
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
        usable_counts (list[int]): Images per class once the unusable ones
            and the extra copies of duplicates are left out.
        problems (list[Problem]): Everything found, worst kind first.
        images (list[ImageInfo]): One entry per listed sample, in order.
        excluded (set[int]): Indices of samples a split should leave out.
        duplicate_groups (list[list[str]]): Paths with identical bytes.
        root (str, optional): Folder the paths are relative to.
        split_counts (dict): Optional extra count columns, e.g.
            ``{'train': [...], 'test': [...]}`` (filled in by
            :func:`~rock_plugin.datasets.prepare.prepare_dataset`).
        skipped (list[str]): Files ignored for their extension.

    Example:
        >>> report = check_images([('a.jpg', 0)], root='data')
        >>> report.ok
        False
        >>> print(report.format_problems())  # doctest: +SKIP
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
        """Render the per-class counts as a table.

        Returns:
            str: Columns ``Label``, ``Class``, ``Listed``, ``Usable``, any
            :attr:`split_counts` columns and ``Problems``, with a total row.
        """
        from rich.console import Console
        from rich.table import Table
        per_class = Counter(p.label for p in self.problems)
        table = Table(title=title)
        columns = ['Label', 'Class', 'Listed', 'Usable', *self.split_counts,
                   'Problems']
        for col in columns:
            table.add_column(col,
                             justify='left' if col == 'Class' else 'right')
        for idx, name in enumerate(self.class_names):
            table.add_row(
                str(idx), name, str(self.counts[idx]),
                str(self.usable_counts[idx]),
                *(str(c[idx]) for c in self.split_counts.values()),
                str(per_class[idx]) if per_class[idx] else '')
        table.add_row(
            '', 'total', str(sum(self.counts)), str(sum(self.usable_counts)),
            *(str(sum(c)) for c in self.split_counts.values()),
            str(len(self.problems)) if self.problems else '')
        buf = io.StringIO()
        Console(file=buf, width=120, color_system=None).print(table)
        return buf.getvalue()

    def format_problems(self, limit: int = 20) -> str:
        """Summarise the problems, grouped by kind.

        Args:
            limit (int): Most problems listed per kind; the rest are counted.

        Returns:
            str: A ``No problems`` line, or one header per kind and one line
            per problem; then the image modes seen.
        """
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
            by_kind = defaultdict(list)
            for p in self.problems:
                by_kind[p.kind].append(p)
            for kind in PROBLEM_KINDS:
                if not by_kind[kind]:
                    continue
                lines.append(f'{kind} ({_KIND_HELP[kind]}):')
                for p in by_kind[kind][:limit]:
                    lines.append(f'  {p.path}' +
                                 (f': {p.detail}' if p.detail else ''))
                if len(by_kind[kind]) > limit:
                    lines.append(f'  ... and {len(by_kind[kind]) - limit} '
                                 'more')
        modes = self.modes
        if set(modes) - {'RGB'}:
            lines.append('Image modes (all valid, loaded as colour): ' +
                         ', '.join(f'{m} {c}'
                                   for m, c in sorted(modes.items())))
        if self.skipped:
            lines.append(f'Ignored {len(self.skipped)} file(s) without an '
                         f'image extension, e.g. {self.skipped[0]}')
        return '\n'.join(lines)


def check_class_tree(root: str,
                     min_size: int = 32,
                     min_per_class: int = 2,
                     workers: Optional[int] = None) -> DatasetReport:
    """Check a folder-per-class tree (see :func:`check_images`).

    Args:
        root (str): Folder with one sub-folder of images per class; empty
            class folders are reported, not fatal.
        min_size (int): Shorter image sides below it are reported.
        min_per_class (int): Classes with fewer usable images are reported.
        workers (int, optional): Threads decoding images.

    Returns:
        DatasetReport: ``images[i].path`` (relative to ``root``) and
        ``images[i].label`` list the samples found, sorted; ``skipped`` the
        files ignored for their extension.

    Example:
        >>> report = check_class_tree('photos')
        >>> print(report.format_table())
    """
    classes, samples, skipped = scan_class_tree(root)
    report = check_images(samples, root=root, min_size=min_size,
                          min_per_class=min_per_class, class_names=classes,
                          workers=workers)
    report.skipped = skipped
    return report


def inspect_image(path: str) -> ImageInfo:
    """Read one file, hash its bytes and decode it fully.

    ``img.load()`` decodes every pixel, which is what catches a truncated
    JPEG (``Image.open`` alone reads only the header). PIL's global
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False for that.

    Args:
        path (str): The file.

    Returns:
        ImageInfo: With ``path`` set to ``path`` and ``label`` -1.
    """
    info = ImageInfo(path=path, label=-1)
    if not osp.isfile(path):
        info.status, info.detail = 'missing', 'file not found'
        return info
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        info.status, info.detail = 'corrupt', f'cannot read: {exc}'
        return info
    info.sha256 = hashlib.sha256(data).hexdigest()
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
        samples (Sequence[tuple]): ``(path, label)`` pairs, or ``(path, label,
            origin)`` where ``origin`` (e.g. ``'train.txt:12'``) is quoted in
            duplicate messages. Relative paths are relative to ``root``.
        root (str, optional): Folder of relative paths.
        min_size (int): Smallest acceptable shorter side, in pixels.
        min_per_class (int): Fewest usable images a class may have.
        class_names (Sequence[str], optional): Names in label order; by
            default ``'0'``, ``'1'``... up to the largest label.
        workers (int, optional): Threads decoding images (PIL releases the
            GIL while decoding). Defaults to ``min(8, CPU count)``.

    Returns:
        DatasetReport: Counts, problems and the samples to leave out: the
        unusable ones, every copy but the first of a duplicate group, and
        every copy of a label conflict (its true class is unknown).

    Example:
        >>> report = check_images([('Chert/1.jpg', 0), ('Chert/2.jpg', 0)],
        ...                       root='data/rocks', class_names=['Chert'])
        >>> report.ok, report.counts
        (True, [2])
    """
    labels = [int(s[1]) for s in samples]
    if class_names is None:
        class_names = [str(i) for i in range(max(labels, default=-1) + 1)]
    class_names = list(class_names)
    for (path, label, *_), lbl in zip(samples, labels):
        if not 0 <= lbl < len(class_names):
            raise DataError(f'label {lbl} out of range for {len(class_names)} '
                            'classes', path)

    def full(path):
        return path if root is None or osp.isabs(path) else osp.join(
            root, path)

    # One decode per distinct file, even when a path is listed twice.
    paths = list(dict.fromkeys(full(s[0]) for s in samples))
    workers = workers or min(8, os.cpu_count() or 1)
    if workers > 1 and len(paths) > 1:
        with ThreadPoolExecutor(workers) as pool:
            found = dict(zip(paths, pool.map(inspect_image, paths)))
    else:
        found = {p: inspect_image(p) for p in paths}

    origins = [s[2] if len(s) > 2 else None for s in samples]
    images, problems, excluded = [], [], set()
    for idx, ((path, *_), lbl) in enumerate(zip(samples, labels)):
        info = found[full(path)]
        info = ImageInfo(path, lbl, info.status, info.detail, info.size,
                         info.mode, info.format, info.sha256)
        images.append(info)
        if info.status != 'ok':
            problems.append(Problem(info.status, path,
                                    info.detail + _at(origins[idx]), lbl))
            excluded.add(idx)
        elif min(info.size) < min_size:
            problems.append(Problem(
                'too_small', path, f'{info.size[0]}x{info.size[1]} px, '
                f'shorter side below {min_size}{_at(origins[idx])}', lbl))

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
                others = [_where(images[j].path, origins[j]) for j in members
                          if j != i]
                problems.append(Problem(
                    'label_conflict', images[i].path,
                    f'in {class_names[images[i].label]!r}'
                    f'{_at(origins[i])}, but the same image is '
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
                detail = 'same bytes as ' + _where(images[first].path,
                                                   origins[first])
            if origins[i] and origins[first] and \
                    _origin_file(origins[i]) != _origin_file(origins[first]):
                detail += '; in two annotation files, so one split leaks ' \
                          'into the other'
            problems.append(Problem('duplicate', images[i].path,
                                    detail + _at(origins[i]),
                                    images[i].label))
            excluded.add(i)

    counts = [0] * len(class_names)
    usable = [0] * len(class_names)
    for idx, lbl in enumerate(labels):
        counts[lbl] += 1
        if idx not in excluded:
            usable[lbl] += 1
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


def _origin_file(origin: str) -> str:
    return origin.rsplit(':', 1)[0]


def _at(origin: Optional[str]) -> str:
    return f' [{origin}]' if origin else ''


def _where(path: str, origin: Optional[str]) -> str:
    return path + _at(origin)
