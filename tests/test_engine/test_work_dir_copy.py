"""Work dirs are self-contained: a copied or moved work dir resumes from its
own files, and no run removes a file outside its own folder."""
import contextlib
import glob
import logging
import os
import os.path as osp
import shutil
import zipfile
from types import SimpleNamespace

import torch
from mmengine.logging import MessageHub, MMLogger

from conftest import run_tool, snapshot
from rock_plugin.utils.work_dir import find_resume_checkpoint
from rock_plugin.engine.hooks import AtomicCheckpointHook
from rock_plugin.utils.paths import path_inside

BEST = 'best_accuracy_top1_epoch_{}.pth'


def _assert_unchanged(folder, before):
    after = snapshot(folder, mtime=True)
    # quickstart_onnx may export into the shared model's folder meanwhile
    added = {p for p in set(after) - set(before)
             if not p.startswith('quickstart.onnx')}
    assert not added, f'{folder} gained {sorted(added)}'
    assert {p: after.get(p) for p in before} == before, \
        f'{folder} changed'


@contextlib.contextmanager
def _restored_afterwards(folder, backup):
    """Hard links (else copies) of ``folder``'s files in ``backup``, put
    back on exit: a regression here must not break the cached model that
    other tests share. Checkpoints are replaced, never rewritten in place,
    so a link keeps the old bytes."""
    names = []
    for root, _, files in os.walk(folder):
        for name in files:
            rel = osp.relpath(osp.join(root, name), folder)
            os.makedirs(osp.dirname(osp.join(backup, rel)), exist_ok=True)
            try:
                os.link(osp.join(folder, rel), osp.join(backup, rel))
            except OSError:  # another file system
                shutil.copy2(osp.join(folder, rel), osp.join(backup, rel))
            names.append(rel)
    try:
        yield
    finally:
        for rel in names:
            path, kept = osp.join(folder, rel), osp.join(backup, rel)
            if not (osp.exists(path) and osp.samefile(path, kept)):
                os.makedirs(osp.dirname(path), exist_ok=True)
                try:  # the very file (and its hard links) again
                    os.link(kept, path + '.restore')
                except OSError:
                    shutil.copy2(kept, path + '.restore')
                os.replace(path + '.restore', path)


def _resume(work, max_epochs):
    return run_tool('tools/train.py', osp.join(work, 'rock_quickstart.py'),
                    '--work-dir', work, '--resume', '--device', 'cpu',
                    '--cfg-options', f'train_cfg.max_epochs={max_epochs}')


def _log_lines(proc, *words):
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if any(w in line for w in words)]


def _runtime_info(path):
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    return ckpt['message_hub']['runtime_info']


def _assert_resumed_here(work, epoch, proc, elsewhere):
    """``work`` resumed from its own files to ``epoch``; ``elsewhere`` (a
    folder it was copied or moved from) is named by no loaded or removed
    file, nor by the new checkpoint's pointers."""
    assert osp.isfile(osp.join(work, f'epoch_{epoch}.pth'))
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work, f'epoch_{epoch}.pth')
    info = _runtime_info(osp.join(work, f'epoch_{epoch}.pth'))
    assert path_inside(info['last_ckpt'], work)
    assert path_inside(info['best_ckpt'], work)
    assert osp.isfile(info['best_ckpt'])
    loaded = _log_lines(proc, 'Load checkpoint from')
    assert loaded and all(f'{work}/epoch_{epoch - 1}.pth' in line
                          for line in loaded), loaded
    for line in _log_lines(proc, 'removed', 'Load checkpoint'):
        assert elsewhere + os.sep not in line, line
    # max_keep_ckpts=2 removed this folder's oldest epoch file
    assert not osp.exists(osp.join(work, f'epoch_{epoch - 2}.pth'))
    # One info line says which same-named files replaced the old folder's
    assert len(_log_lines(proc, 'using the files of the same name here')) \
        == 1


def test_copied_then_moved_work_dir_resumes_from_its_own_files(
        quickstart_model, tmp_path):
    """A user's ``cp -r`` then ``--resume`` in the copy, as in issue 20: the
    original stays byte for byte; then the copy is moved and resumed."""
    original = quickstart_model['work_dir']
    with open(osp.join(original, 'last_checkpoint')) as f:
        assert f.read().startswith(original + os.sep)  # what the copy holds
    before = snapshot(original, mtime=True)
    copy = str(tmp_path / 'copy')
    # the ONNX export is no part of a training work dir (and 20 MB)
    shutil.copytree(original, copy,
                    ignore=shutil.ignore_patterns('quickstart.onnx*'))

    with _restored_afterwards(original, str(tmp_path / 'backup')):
        proc = _resume(copy, 3)
        _assert_unchanged(original, before)
        _assert_resumed_here(copy, 3, proc, original)
        # The copy's own best moved on only if epoch 3 scored as well; one
        # best file either way, which best.pth is.
        best = glob.glob(osp.join(copy, BEST.format('*')))
        assert len(best) == 1 and osp.samefile(best[0],
                                               osp.join(copy, 'best.pth'))

        # Moved: all it recorded names a folder that no longer exists.
        moved = str(tmp_path / 'moved')
        os.rename(copy, moved)
        proc = _resume(moved, 4)
        _assert_resumed_here(moved, 4, proc, copy)
        assert not osp.exists(copy)  # nothing written at the old place
        assert not _log_lines(proc, 'is missing, incomplete')  # no fallback
        _assert_unchanged(original, before)


def _zip(path):
    with zipfile.ZipFile(path, 'w') as z:  # "complete", as torch writes
        z.writestr('data.pkl', b'x')
    return str(path)


def test_resume_pointer_naming_another_dir_takes_the_own_file(tmp_path,
                                                             monkeypatch):
    old, copy = tmp_path / 'old', tmp_path / 'copy'
    for work in (old, copy):
        work.mkdir()
        for n in (1, 2):
            _zip(work / f'epoch_{n}.pth')
        (work / 'last_checkpoint').write_text(str(old / 'epoch_2.pth'))
    assert find_resume_checkpoint(str(copy)) == str(copy / 'epoch_2.pth')
    # same name missing here: this dir's newest, never the other dir's
    os.remove(copy / 'epoch_2.pth')
    assert find_resume_checkpoint(str(copy)) == str(copy / 'epoch_1.pth')
    # the pointer relative to the current dir, as mmengine writes it for a
    # relative --work-dir, still names this dir's file
    (copy / 'last_checkpoint').write_text('copy/epoch_1.pth')
    monkeypatch.chdir(tmp_path)
    assert find_resume_checkpoint('copy') == 'copy/epoch_1.pth'


def _hook_and_runner(tmp_path, name, hub_info):
    """An AtomicCheckpointHook after ``before_train`` on a runner whose
    message hub holds ``hub_info`` (as restored from a checkpoint on
    resume)."""
    work = tmp_path / 'run'
    work.mkdir(exist_ok=True)
    logger = MMLogger.get_instance(name, log_file=str(tmp_path / 'log.txt'))
    hub = MessageHub.get_instance(name)
    for key, value in hub_info.items():
        hub.update_info(key, value)

    def save_checkpoint(out_dir, filename, *args, **kwargs):
        _zip(osp.join(out_dir, filename))

    runner = SimpleNamespace(work_dir=str(work), logger=logger,
                             message_hub=hub, epoch=3, iter=30,
                             save_checkpoint=save_checkpoint)
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1,
                                save_best='accuracy/top1', rule='greater')
    hook.before_train(runner)
    return hook, runner, work


def test_hook_never_removes_outside_its_out_dir(tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    outside = _zip(other / BEST.format(2))
    hook, runner, work = _hook_and_runner(
        tmp_path, 'guard', dict(best_ckpt=outside, best_score=50.0))
    # nothing of that name here: forgotten, not removed on a new best
    assert hook.best_ckpt_path is None
    assert runner.message_hub.get_info('best_ckpt') is None
    hook.after_val_epoch(runner, {'accuracy/top1': 90.0})
    assert osp.isfile(outside)
    assert osp.isfile(work / BEST.format(3))
    assert osp.samefile(work / 'best.pth', work / BEST.format(3))

    # The guard under every removal (old best, max_keep_ckpts), by real
    # path: '..', a link to a folder outside, the folder itself are kept.
    backend = hook.file_backend
    os.symlink(other, work / 'linked')
    (other / 'sub').mkdir()
    for path in (outside, str(work / '..' / 'other' / BEST.format(2)),
                 str(work / 'linked' / BEST.format(2))):
        backend.remove(path)
        assert osp.isfile(outside)
    for path in (str(other / 'sub'), str(work)):
        backend.rmtree(path)
        assert osp.isdir(path)
    # a link inside is this run's entry: removed, its target kept
    os.symlink(outside, work / 'link.pth')
    backend.remove(str(work / 'link.pth'))
    assert not osp.lexists(work / 'link.pth') and osp.isfile(outside)
    inside = _zip(work / 'epoch_1.pth')
    backend.remove(inside)
    assert not osp.exists(inside)
    with open(tmp_path / 'log.txt') as f:
        log = f.read()
    assert log.count('kept, not removed') == 5
    assert logging.getLevelName(logging.WARNING) in log


def test_restored_best_outside_becomes_the_same_named_file_here(tmp_path):
    other, work = tmp_path / 'other', tmp_path / 'run'
    other.mkdir()
    work.mkdir()
    outside = _zip(other / BEST.format(2))
    here = _zip(work / BEST.format(2))  # a copy of ``other``
    hook, runner, _ = _hook_and_runner(
        tmp_path, 'adopt', dict(best_ckpt=outside, best_score=50.0,
                                last_ckpt=str(other / 'epoch_2.pth')))
    assert hook.best_ckpt_path == here
    assert runner.message_hub.get_info('best_ckpt') == here
    assert runner.message_hub.get_info('last_ckpt') is None  # none here
    hook.after_val_epoch(runner, {'accuracy/top1': 90.0})
    assert not osp.exists(here) and osp.isfile(outside)
    assert osp.isfile(work / BEST.format(3))
    with open(tmp_path / 'log.txt') as f:
        log = f.read()
    assert f'The previous best checkpoint {here} is removed' in log
    assert 'using the files of the same name here' in log
    assert 'kept, not removed' not in log
