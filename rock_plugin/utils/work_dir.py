"""A training run's work dir: one run at a time, never mixed with an old one
(which a later resume would otherwise continue)."""
import glob
import logging
import os
import os.path as osp
import re
import shutil
import socket
import time
from typing import List, Optional

from mmengine.logging import print_log

from rock_plugin.utils.errors import WorkDirError
from rock_plugin.utils.paths import resolve_in_dir

LOCK_FILE = '.lock'
ARCHIVE_DIR = 'previous_runs'


class WorkDirLock:
    """An exclusive ``fcntl.flock`` on ``<work_dir>/.lock`` (created) while
    in use, so a second run into the folder stops with a ``WorkDirError`` at
    once. The kernel drops it however the process ends: no stale locks.

    Example:
        >>> with WorkDirLock('work_dirs/rock_b4'):
        ...     runner.train()
    """

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_FILE)
        self._file = None

    def acquire(self) -> 'WorkDirLock':
        try:
            import fcntl
        except ImportError:  # Windows: no flock; runs are not guarded there
            return self
        os.makedirs(self.work_dir, exist_ok=True)
        # Not truncated on open: the holder's line must survive our attempt.
        f = open(self.path, 'a+', encoding='utf-8')
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or 'another process'
            f.close()
            raise WorkDirError(
                f'{self.work_dir}: another run is using this work dir '
                f'({holder}). Wait for it to finish, or give this run its '
                'own cfg.work_dir') from None
        f.seek(0)
        f.truncate()
        f.write(f'pid {os.getpid()} on {socket.gethostname()}, started '
                f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n')
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def old_run_files(work_dir: str) -> List[str]:
    """Checkpoints (and the ``last_checkpoint`` pointer) in ``work_dir``."""
    found = glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        found.append(pointer)
    return sorted(found)


def prepare_fresh_run(work_dir: str, fresh: bool = False,
                      old: Optional[List[str]] = None) -> Optional[str]:
    """Refuse (``WorkDirError``) a fresh run into a work dir that holds an
    earlier run's checkpoints, or with ``fresh`` move that run's files (all
    but the lock and earlier archives) into ``previous_runs/<time>/``.
    ``old``: the files that mark an earlier run (default: its checkpoints,
    :func:`old_run_files`; a cross-validation's plan for its work dir).
    Returns the archive folder when files were moved, else None."""
    old = old_run_files(work_dir) if old is None else old
    if not old:
        return None
    if not fresh:
        names = ', '.join(osp.basename(p) for p in old[:3]) + \
            (', ...' if len(old) > 3 else '')
        raise WorkDirError(
            f'{work_dir}: holds the checkpoints of an earlier run ({names}). '
            'Continue it with cfg.resume=True, start over with fresh=True '
            f'(moves the earlier files into {ARCHIVE_DIR}/), or choose '
            'another cfg.work_dir')
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(
        max(osp.getmtime(p) for p in old)))
    archive = osp.join(work_dir, ARCHIVE_DIR, stamp)
    suffix = 1
    while osp.exists(archive):
        suffix += 1
        archive = osp.join(work_dir, ARCHIVE_DIR, f'{stamp}_{suffix}')
    os.makedirs(archive)
    for name in os.listdir(work_dir):
        if name not in (LOCK_FILE, ARCHIVE_DIR):
            shutil.move(osp.join(work_dir, name), osp.join(archive, name))
    print_log(f'fresh start: the earlier run\'s files are now in {archive}',
              logger='current', level=logging.WARNING)
    return archive


def checkpoint_dir(work_dir: str, out_dir: Optional[str] = None) -> str:
    """Where the checkpoint hook saves: ``work_dir``, or with its ``out_dir``
    set, ``out_dir/<work dir name>`` (mmengine's ``CheckpointHook`` rule)."""
    if out_dir is None or out_dir == work_dir:
        return work_dir
    return osp.join(out_dir, osp.basename(work_dir.rstrip(osp.sep)))


def find_resume_checkpoint(work_dir: str,
                           ckpt_dir: Optional[str] = None) -> str:
    """The checkpoint a resume without ``cfg.load_from`` continues from: the
    one named by ``last_checkpoint`` (which mmengine trusts blindly) if
    complete, else the newest complete ``epoch_*.pth`` (with a warning); none
    at all is an error instead of a silent fresh start. Only files of this
    run count: ``last_checkpoint`` of a copied or moved work dir names the
    old dir, so its file of the same name here is taken instead.

    Args:
        work_dir (str): The run's work dir (holds ``last_checkpoint``).
        ckpt_dir (str, optional): Where its checkpoints are, when not in
            ``work_dir`` (:func:`checkpoint_dir`).

    Returns:
        str: The checkpoint to resume from.

    Example:
        >>> find_resume_checkpoint('work_dirs/rock_quickstart')
        'work_dirs/rock_quickstart/epoch_30.pth'
    """
    import zipfile

    # torch checkpoints are zip archives with the directory at the end, so a
    # truncated file fails this cheap check.
    def complete(path):
        return osp.isfile(path) and zipfile.is_zipfile(path)

    ckpt_dir = ckpt_dir or work_dir
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = open(pointer).read().strip() if osp.isfile(pointer) else ''
    own = resolve_in_dir(named, ckpt_dir, exists=complete)
    if own and complete(own):
        if own != named:
            print_log(f'resume: last_checkpoint names {named}, outside this '
                      f'work dir; continuing from {own} (the file of that '
                      'name here)', logger='current')
        return own
    found = sorted(glob.glob(osp.join(glob.escape(ckpt_dir), 'epoch_*.pth')),
                   key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]),
                   reverse=True)
    for path in found:
        if complete(path):
            if named:
                print_log(f'resume: {named} (from last_checkpoint) is missing'
                          ', incomplete or not in this work dir; continuing '
                          f'from {path} instead', logger='current',
                          level=logging.WARNING)
            return path
    raise FileNotFoundError(
        f'{work_dir}: found no checkpoint to continue (no complete '
        'last_checkpoint or epoch_*.pth). Start without cfg.resume, or set '
        'cfg.load_from to the checkpoint')


def check_work_dir(work_dir: str) -> None:
    """Fail at start, not after an epoch, when the work dir is unusable."""
    import tempfile
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f'work dir {work_dir} is not writable '
                      f'({exc.strerror or exc}); choose another with '
                      'cfg.work_dir') from None
