"""SIGKILL at several points, then --resume: same weights, same history."""
import glob
import os
import os.path as osp
import signal

import pytest
import torch

from conftest import TINY_CONFIG, run_tool

KILL_HOOK = osp.join(osp.dirname(__file__), 'data', 'kill_hook.py')
ARGS = ('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '5',
        '--deterministic', '--cfg-options', 'train_cfg.max_epochs=3')


def _read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture(scope='module')
def reference(tiny_data, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('ref'))
    run_tool(*ARGS[:-2], '--data-root', tiny_data, '--work-dir', work,
             *ARGS[-2:])
    return work


@pytest.mark.parametrize('point,epoch,it', [
    ('train_iter', 2, 3),   # mid-epoch
    ('val_iter', 2, 1),     # during validation (epoch 2 checkpoint exists)
    ('ckpt_write', 2, 1),   # while epoch_2.pth is being written
    ('train_iter', 1, 2),   # before any checkpoint: resume finds none
])
def test_kill_then_resume_equals_uninterrupted(reference, tiny_data, tmp_path,
                                               point, epoch, it):
    work = str(tmp_path / 'run')
    config = tmp_path / 'kill_config.py'
    config.write_text(
        f"_base_ = [{TINY_CONFIG!r}]\n"
        "custom_imports = dict(imports=['rock_plugin', 'kill_hook'])\n"
        "custom_hooks = [dict(type='HistoryHook'), dict(type='RngStateHook'),"
        " dict(type='NanGuardHook'), dict(type='SafeCheckpointHook'),"
        f" dict(type='KillAtHook', point={point!r}, epoch={epoch}, "
        f"iter={it})]\n")
    killed = run_tool('tools/train.py', str(config), *ARGS[2:-2],
                      '--data-root', tiny_data, '--work-dir', work,
                      *ARGS[-2:], env=dict(PYTHONPATH=osp.dirname(KILL_HOOK)),
                      check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # nothing truncated is left under a real name
    for path in glob.glob(osp.join(work, '*.pth')):
        torch.load(path, weights_only=True)
    if point == 'ckpt_write':  # killed with the bytes in a temp file
        assert glob.glob(osp.join(work, '.epoch_2.pth.*.tmp'))
        assert not osp.exists(osp.join(work, 'epoch_2.pth'))
        assert _read(osp.join(work, 'last_checkpoint')).endswith('epoch_1.pth')
    if point == 'train_iter' and epoch == 1:
        proc = run_tool(*ARGS[:-2], '--data-root', tiny_data, '--work-dir',
                        work, '--resume', *ARGS[-2:], check=False)
        assert proc.returncode == 2
        assert 'found no checkpoint to continue' in proc.stderr
        return
    run_tool(*ARGS[:-2], '--data-root', tiny_data, '--work-dir', work,
             '--resume', *ARGS[-2:])
    a = torch.load(osp.join(work, 'epoch_3.pth'), weights_only=True)
    b = torch.load(osp.join(reference, 'epoch_3.pth'), weights_only=True)
    diff = max((a['state_dict'][k].float() - b['state_dict'][k].float())
               .abs().max().item() for k in b['state_dict'])
    assert diff <= 1e-6
    assert _read(osp.join(work, 'history.csv')) == \
        _read(osp.join(reference, 'history.csv'))
