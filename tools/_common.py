"""What every tool shares: the common flags, their start-up, the exit code
(:func:`run`). The flags that edit a config live in ``_config_flags``.

A tool run as ``python tools/x.py`` has ``tools/`` on ``sys.path`` and
imports this module as ``_common``; importing it also puts the repository
root on the path, so a checkout runs without ``pip install -e .``.

The common flags, each defined here only: ``--device``, ``--gpu-id``,
``--trust-checkpoint``, ``--debug``, ``--cfg-options``, ``--launcher`` and
``--local-rank``. :func:`setup_env` applies them before anything touches
CUDA or loads a checkpoint.
"""
import argparse
import contextlib
import os
import os.path as osp
import re
import sys
from typing import Callable, Dict, Iterator, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The shipped configs: the checkout's, or a wheel's copy (rock_plugin/.mim).
CONFIGS = osp.join(REPO, 'configs')
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from mmengine.config import DictAction  # noqa: E402


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` with a clear error for an item without
    ``=`` (mmengine's own fails with "not enough values to unpack")."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values:
            if '=' not in kv or kv.startswith('='):
                raise ValueError(
                    f'--cfg-options {kv}: expected key=value, e.g. '
                    'train_cfg.max_epochs=10')
        super().__call__(parser, namespace, values, option_string)


def add_common_args(parser: argparse.ArgumentParser,
                    device: Optional[str] = None,
                    distributed: bool = True,
                    cfg_options: bool = True) -> argparse.ArgumentParser:
    """Add the flags every tool shares.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        device (str, optional): Default of ``--device``; None picks CUDA
            when there is one.
        distributed (bool): Also add ``--gpu-id``, ``--launcher`` and
            ``--local-rank``.
        cfg_options (bool): Also add ``--cfg-options``.

    Returns:
        argparse.ArgumentParser: ``parser``.
    """
    parser.add_argument(
        '--device', default=device,
        help='cpu or cuda[:N] (default: '
        + (device or 'cuda when available, else cpu') + ')')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow loading stock mmengine checkpoints you '
                        'trust (see README, Troubleshooting)')
    parser.add_argument('--debug', action='store_true',
                        help='show full tracebacks')
    if cfg_options:
        parser.add_argument(
            '--cfg-options', nargs='+', action=CfgOptionsAction,
            help='override config settings, key=value (e.g. '
            'train_cfg.max_epochs=10 model.head.num_classes=5)')
    if distributed:
        parser.add_argument('--gpu-id', type=int, default=None,
                            help='which GPU for a single-GPU run')
        parser.add_argument('--launcher', default='none',
                            choices=['none', 'pytorch', 'slurm', 'mpi'],
                            help='job launcher (dist_*.sh / slurm_*.sh set '
                            'it)')
        parser.add_argument('--local-rank', '--local_rank', type=int,
                            default=0)
    return parser


def setup_env(args: argparse.Namespace) -> None:
    """Apply the common flags: device choice, trust mode, local rank.

    Runs before anything touches CUDA or loads a checkpoint. Raises
    ``ValueError`` for a device this machine does not have (``--device
    cuda`` without CUDA would otherwise train on the CPU in silence).
    """
    device = getattr(args, 'device', None)
    gpu_id = getattr(args, 'gpu_id', None)
    launcher = getattr(args, 'launcher', 'none')
    if device is not None:
        match = re.fullmatch(r'(cpu|cuda)(?::(\d+))?', str(device))
        if match is None:
            raise ValueError(f'--device {device}: not a device this tool '
                             'runs on; use cpu or cuda[:N]')
        if match.group(1) == 'cpu':
            os.environ['CUDA_VISIBLE_DEVICES'] = ''
        elif match.group(2) is not None and gpu_id is None and \
                launcher == 'none' and hasattr(args, 'gpu_id'):
            gpu_id = int(match.group(2))
            args.device = 'cuda'
    if gpu_id is not None and launcher == 'none':
        os.environ['CUDA_VISIBLE_DEVICES'] = str(gpu_id)
    if device is not None and str(device).startswith('cuda'):
        import torch
        if not torch.cuda.is_available():
            raise ValueError(f'--device {device}: no CUDA device is '
                             'available here; use --device cpu')
    if getattr(args, 'trust_checkpoint', False):
        # The only place trust mode is switched on for a tool: an env
        # variable, so that data-loader workers and ranks see it too.
        from rock_plugin.utils.checkpoint_io import TRUST_ENV
        os.environ[TRUST_ENV] = '1'
    if hasattr(args, 'local_rank') and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def add_check_args(parser: argparse.ArgumentParser, strict_help: str) -> None:
    """The image-check flags of ``tools/dataset/check_dataset.py`` and
    ``tools/dataset/prepare_dataset.py``: ``--strict``, ``--min-size``,
    ``--min-per-class`` and ``--debug``.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        strict_help (str): What ``--strict`` does in that tool.
    """
    parser.add_argument('--strict', action='store_true', help=strict_help)
    parser.add_argument('--min-size', type=int, default=32,
                        help='report images whose shorter side is smaller '
                        '(default: 32)')
    parser.add_argument('--min-per-class', type=int, default=2,
                        help='report classes with fewer usable images '
                        '(default: 2)')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback on errors')


def shipped_config(path: str) -> str:
    """A config argument (argparse ``type``): an existing file as given,
    else the shipped config it names (``rock_quickstart``,
    ``rock_quickstart.py``, ``configs/rock_b4.py``), from any folder: the
    checkout's ``configs/``, or an installed wheel's copy.

    Args:
        path (str): The argument as typed.

    Returns:
        str: ``path``, or the shipped config's path when ``path`` is not a
        file and names one (a missing file stays as typed: its error).

    Example:
        >>> shipped_config('rock_quickstart')
        '/.../configs/rock_quickstart.py'
    """
    if osp.isfile(osp.expanduser(path)) or osp.isabs(path):
        return path
    name = osp.normpath(path).replace(os.sep, '/')
    if name.startswith('configs/'):
        name = name[len('configs/'):]
    if not name.endswith('.py'):
        name += '.py'
    shipped = osp.join(CONFIGS, name)
    if name.startswith('../') or not osp.isfile(shipped):
        return path
    return shipped


def add_model_args(parser: argparse.ArgumentParser,
                   optional: bool = False) -> None:
    """``CONFIG CHECKPOINT``, the positionals of every tool that loads a
    trained model (``optional``: both may be left out)."""
    nargs = '?' if optional else None
    parser.add_argument('config', nargs=nargs, type=shipped_config,
                        help='the training config (or a shipped one\'s '
                        'name, e.g. rock_quickstart)')
    parser.add_argument('checkpoint', nargs=nargs,
                        help='the trained .pth checkpoint')


def add_folder_args(parser: argparse.ArgumentParser, out_help: str) -> None:
    """``SRC OUT`` of the tools that read a folder per class and write."""
    parser.add_argument('src', help='folder with one sub-folder per class')
    parser.add_argument('out', help=out_help)


def add_data_args(parser: argparse.ArgumentParser, split_help: str,
                  seed_help: str) -> None:
    """The data flags of tools/train.py and tools/test.py: ``--data-root``,
    ``--split-validation --ratio --fold``, ``--seed`` and
    ``--skip-bad-images``."""
    parser.add_argument('--data-root', help='set data_root of every dataset')
    parser.add_argument('--split-validation', action='store_true',
                        help=split_help)
    parser.add_argument('--ratio', type=float, default=None,
                        help='validation fraction with --split-validation '
                        '(default 0.2)')
    parser.add_argument('--fold', type=int, default=None,
                        help='validation fold index with --split-validation '
                        '(default: derived from the seed)')
    parser.add_argument('--seed', type=int, default=None, help=seed_help)
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out unreadable images (with a warning '
                        'each and a count) instead of stopping')


def check_split_args(args: argparse.Namespace) -> None:
    """``--ratio`` / ``--fold`` only mean something with a split."""
    if not args.split_validation:
        given = [f for f, v in (('--ratio', args.ratio),
                                ('--fold', args.fold)) if v is not None]
        if given:
            verb = 'apply' if len(given) > 1 else 'applies'
            raise ValueError(f'{" and ".join(given)} only {verb} with '
                             '--split-validation; add it, or leave '
                             f'{"them" if len(given) > 1 else "it"} out')
    elif args.ratio is None:
        args.ratio = 0.2


def default_work_dir(config: str) -> str:
    """``work_dirs/<config name>``, mmpretrain's default."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def end_loader_workers(runner) -> None:
    """End a finished runner's persistent training workers now, before the
    caller drops the runner.

    A runner sits in reference cycles, so only ``gc.collect()`` frees it;
    the collector closes the workers' queues before the loader iterator's
    ``__del__`` sends the stop, and torch then waits 5 s for each worker
    before killing it. Dropped by reference count first, the iterator
    stops them at once.

    Args:
        runner: A runner after ``train()``.

    Example:
        >>> runner.train()
        >>> end_loader_workers(runner)
        >>> del runner
    """
    loader = getattr(runner.train_loop, 'dataloader', None)
    if getattr(loader, '_iterator', None) is not None:
        loader._iterator = None


def check_files(*pairs) -> None:
    """``(path, what)`` pairs; a missing file is one clear error."""
    for path, what in pairs:
        if path and not osp.isfile(osp.expanduser(path)):
            raise FileNotFoundError(f'{path}: {what} not found')


def _inside(path: str, folder: str) -> bool:
    return osp.commonpath([path, folder]) == folder


def check_output_not_input(out: Optional[str], inputs, flag: str) -> None:
    """Refuse an output that would overwrite or mix with an input: ``out``
    is an input file (by real path, or the same file through a hard link),
    or is or lies inside an input folder.

    Args:
        out (str, optional): The output file or folder (None: no check).
        inputs (Iterable[str]): Input files and folders; empty ones are
            left out (an unset ``data_root`` is not the current folder).
        flag (str): The output's flag, for the message.

    Raises:
        ValueError: One line naming the flag and the input.

    Example:
        >>> check_output_not_input('shown', ['data/rocks'], '--show-dir')
        >>> check_output_not_input('data/rocks/x', ['data/rocks'], '--out')
        Traceback (most recent call last):
        ValueError: --out data/rocks/x: inside the input folder data/rocks...
    """
    if not out:
        return
    out_real = osp.realpath(osp.expanduser(out))
    for given in inputs:
        if not given:
            continue
        real = osp.realpath(osp.expanduser(given))
        same = out_real == real
        if not same and osp.exists(out_real) and osp.exists(real):
            same = osp.samefile(out_real, real)  # a hard link
        if same:
            raise ValueError(
                f'{flag} {out}: that is the input {given}, which it would '
                f'overwrite; give {flag} another path')
        if osp.isdir(real) and _inside(out_real, real):
            raise ValueError(
                f'{flag} {out}: inside the input folder {given}, where the '
                'output would overwrite or mix with the inputs; give '
                f'{flag} a folder outside it')


# What a user can cause and fix: bad data, files, checkpoints, config values.
USER_ERRORS = (ValueError, KeyError, OSError)  # OSError: missing files too
# The package's words for what every tool's own flag sets (add_common_args).
COMMON_FLAG_HINTS = {
    'set ROCK_PLUGIN_TRUST_CHECKPOINTS=1 (or load it with trust=True)':
        'set ROCK_PLUGIN_TRUST_CHECKPOINTS=1 or pass --trust-checkpoint',
}


def _product_errors() -> tuple:
    from rock_plugin.utils.errors import (CheckpointError,
                                          TrainingDivergedError, WorkDirError)
    return CheckpointError, TrainingDivergedError, WorkDirError


@contextlib.contextmanager
def flag_hint(hints: Dict[str, str]) -> Iterator[None]:
    """Name the tool's flags in an error the package raises in the block.

    The package has no command line: its messages name config keys and
    arguments as a Python caller writes them (``cfg.work_dir``,
    ``folds=``). Each phrase of ``hints`` becomes the tool's words for it,
    in the error itself (same type and attributes), so a tool user reads
    the flag to change.

    Args:
        hints (dict[str, str]): The package's phrase -> the tool's.

    Example:
        >>> with flag_hint({'folds=': '--folds '}):
        ...     assign_folds([0, 0, 0, 1], 3)
        Traceback (most recent call last):
        DataError: class '1' has 1 images, fewer than --folds 3: ...
    """
    # Not after a letter, digit, dot or path separator: the package's
    # phrase, never part of a name or path.
    pattern = re.compile(r'(?<![\w./\\-])(?:' + '|'.join(
        re.escape(k) for k in sorted(hints, key=len, reverse=True)) + ')')
    try:
        yield
    except (*_product_errors(), ValueError, OSError) as exc:
        def reword(text):
            return pattern.sub(lambda m: hints[m.group(0)], text) \
                if isinstance(text, str) and hints else text
        exc.args = tuple(reword(a) for a in exc.args)
        if isinstance(exc, OSError) and exc.strerror:
            exc.strerror = reword(exc.strerror)  # what str(exc) shows
        raise


def run_cli(main: Callable, argv: Optional[List[str]] = None) -> int:
    """Run a tool's ``main(argv)`` (default ``sys.argv[1:]``) and return its
    exit code: 2 after printing one ``error: ...`` line for a user error
    (the product's error types, ``ValueError``, ``KeyError``, ``OSError``),
    else 0. ``--debug`` in ``argv`` lets the traceback through.

    Example:
        >>> run_cli(main, ['missing.py'])  # prints "error: ..."
        2
    """
    argv = sys.argv[1:] if argv is None else argv
    debug = '--debug' in argv
    try:
        with flag_hint(COMMON_FLAG_HINTS):
            main(argv)
    except (*_product_errors(), *USER_ERRORS) as exc:
        if debug:
            raise
        message = str(exc) if not isinstance(exc, KeyError) else \
            f'missing key {exc}'
        if 'Original Traceback' in message:
            # re-raised from a DataLoader worker: keep the original message
            last = [ln for ln in message.splitlines() if ln.strip()][-1]
            message = last.split(': ', 1)[1] if ': ' in last else last
        from rock_plugin.utils.text import printable
        print(f'error: {printable(message)}', file=sys.stderr)
        print('(run again with --debug for the full traceback)',
              file=sys.stderr)
        return 2
    return 0


def run(main: Callable, argv: Optional[List[str]] = None) -> None:
    """Run a tool's ``main(argv)`` and exit with its code
    (:func:`run_cli`); a rank of a distributed run leaves through
    :func:`exit_distributed_rank`."""
    code = run_cli(main, argv)
    if int(os.environ.get('WORLD_SIZE') or 1) > 1:
        exit_distributed_rank(code)
    sys.exit(code)


def exit_distributed_rank(code: int) -> None:
    """End a rank of a distributed run: the ``atexit`` handlers (logging's
    flush among them) and a flush of stdout/stderr, then ``os._exit(code)``,
    skipping only the interpreter's teardown.

    Why: with torch 2.14 a DDP-wrapped model keeps its gloo process group
    alive after ``destroy_process_group`` (measured: 10 references to the
    group survive deleting the wrapper, and its 3 threads stay), so gloo's
    threads outlive the interpreter. A gloo thread that takes the GIL of a
    finalising interpreter (e.g. when the other rank closes its sockets)
    aborts the rank: "terminate called without an active exception",
    SIGABRT, seen once in CI in ``tools/dist_test.sh``; the mechanism of
    pytorch/pytorch#179291, whose fix (destroy the groups at exit) was
    abandoned and could not free a group DDP still holds anyway. Every file
    is closed by then: the tools write through context managers and atomic
    renames.

    Args:
        code (int): The exit status.
    """
    import atexit
    atexit._run_exitfuncs()  # the teardown's own first step, kept
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
