"""Progress bars with an ETA on the terminal, and nothing at all elsewhere.

Every bar of a process (folds, a training run, its validation) is a row of
one shared ``rich`` display on stderr. While it is shown, terminal output
(``print``, warnings, mmengine's log lines) goes above it through rich,
so that no line is overwritten; output to files or pipes is left alone.
"""
import atexit
import logging
import os
import sys
from typing import Iterable, Optional

_shared = dict(progress=None, bars=0)


def progress_enabled(enabled: Optional[bool] = None, stream=None) -> bool:
    """Whether bars are drawn: ``enabled`` when given, else only on rank 0
    when ``stream`` (default stderr) is a terminal and ``CI`` is unset."""
    if enabled is not None:
        return enabled
    if os.environ.get('CI', '').lower() not in ('', '0', 'false') or \
            os.environ.get('RANK', '0') != '0':
        return False
    from mmengine.dist import is_main_process
    isatty = getattr(stream or sys.stderr, 'isatty', None)
    return bool(isatty and isatty()) and is_main_process()


def _log_handlers():
    from mmengine.logging import MMLogger
    loggers = [logging.getLogger(), MMLogger.get_current_instance()]
    return [h for lg in loggers for h in lg.handlers
            if type(h) is logging.StreamHandler]


def _start(stream, force: bool):
    from rich.console import Console
    from rich.file_proxy import FileProxy
    from rich.progress import (BarColumn, Progress, ProgressColumn,
                               TextColumn, TimeElapsedColumn)
    from rich.text import Text

    class CountColumn(ProgressColumn):
        # Blank for a step of unknown length (an export).
        def render(self, task):
            count = int(task.completed)
            total = '?' if task.total is None else int(task.total)
            return Text(f'{count}/{total}' if count or task.total else '',
                        style='progress.download')

    class EtaColumn(ProgressColumn):
        # From the mean rate since the bar started: validation pauses and
        # minutes-long folds count in it too, unlike rich's 30 s window.
        def render(self, task):
            done = task.completed - task.fields.get('first', 0)
            if task.total is None:
                return Text('')
            eta = '-:--:--'
            if done > 0 and task.elapsed:
                left = int(task.elapsed / done * (task.total - task.completed))
                eta = f'{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}'
            return Text(f'eta {eta}', style='progress.remaining')

    stream = getattr(stream, 'rich_proxied_file', stream)
    console = Console(file=stream, force_terminal=force or None)
    # Only the terminal's own streams: a bar drawn into another file (a
    # test's) must not swallow them, nor a redirected stdout.
    stderr = stream is getattr(sys.stderr, 'rich_proxied_file', sys.stderr)
    stdout = stderr and console.is_terminal and \
        getattr(sys.stdout, 'isatty', lambda: False)()
    progress = Progress(
        TextColumn('{task.description}'), BarColumn(), CountColumn(),
        TimeElapsedColumn(), EtaColumn(), console=console,
        refresh_per_second=4, redirect_stdout=stdout, redirect_stderr=stderr)
    for handler in _log_handlers():  # made before: they hold the real files
        if (stdout and handler.stream is sys.stdout) or \
                (stderr and handler.stream is sys.stderr):
            handler.setStream(FileProxy(console, handler.stream))
    progress.start()
    return progress


def _stop(transient: bool = False) -> None:
    progress, _shared['progress'], _shared['bars'] = _shared['progress'], \
        None, 0
    if progress is None:
        return
    progress.live.transient = transient
    progress.stop()
    for handler in _log_handlers():  # also those made while it was shown
        real = getattr(handler.stream, 'rich_proxied_file', None)
        if real is not None:
            handler.setStream(real)


atexit.register(_stop)  # a run that failed never closed its bar


class ProgressBar:
    """A bar with count, elapsed time and ETA, or nothing when disabled
    (see :func:`progress_enabled`).

    Args:
        description (str): Text before the bar.
        total (int, optional): Steps; None: no ETA.
        completed (int): Steps already done (a resumed run): the ETA only
            uses the rate of this run. Defaults to 0.
        transient (bool): Remove it when closed. Defaults to True.
        enabled (bool, optional): Force it on or off (default: auto).
        stream: Where to draw the first bar (default: stderr).

    Example:
        >>> with ProgressBar('epoch 1/30', total=120) as bar:
        ...     bar.update(advance=1)
    """

    def __init__(self, description: str, total: Optional[int] = None,
                 completed: int = 0, transient: bool = True,
                 enabled: Optional[bool] = None, stream=None):
        self.transient, self.task = transient, None
        if not progress_enabled(enabled, stream):
            return
        if _shared['progress'] is None:
            _shared['progress'] = _start(stream or sys.stderr, bool(enabled))
        _shared['bars'] += 1
        self.task = _shared['progress'].add_task(
            description, total=total, completed=completed, first=completed)

    def update(self, advance: Optional[int] = None, completed=None,
               description: Optional[str] = None) -> None:
        """Move the bar by ``advance`` or to ``completed``; relabel it."""
        if self.task is not None and _shared['progress'] is not None:
            _shared['progress'].update(self.task, advance=advance,
                                       completed=completed,
                                       description=description)

    def close(self) -> None:
        """Remove the bar (the last one, unless transient, stays drawn)."""
        task, self.task = self.task, None
        if task is None or _shared['progress'] is None:
            return
        _shared['bars'] -= 1
        if _shared['bars'] > 0:
            _shared['progress'].remove_task(task)
        else:
            _stop(self.transient)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable, description: str, total: Optional[int] = None,
          **kwargs) -> Iterable:
    """``iterable`` with a :class:`ProgressBar` (``kwargs`` go to it), or
    ``iterable`` itself when bars are disabled: output unchanged.

    Example:
        >>> for k in track(range(5), 'folds'):
        ...     pass
    """
    if not progress_enabled(kwargs.get('enabled'), kwargs.get('stream')):
        return iterable
    if total is None and hasattr(iterable, '__len__'):
        total = len(iterable)

    def tracked():
        with ProgressBar(description, total, **kwargs) as bar:
            for item in iterable:
                yield item
                bar.update(advance=1)
    return tracked()
