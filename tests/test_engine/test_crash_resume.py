"""SIGKILL at several points, then --resume: the same weights and the same
history.csv as an uninterrupted run, on the shipped loader settings
(data-loader workers on and persistent)."""
import glob
import os.path as osp

import torch

from conftest import (REPO, TINY_CONFIG, kill_config, run_tool,
                      train_killable)

QUICKSTART = osp.join(REPO, 'configs', 'rock_quickstart.py')
# The shipped quick start on the 3-class test images, 3 epochs; its loader
# settings (2 persistent training workers, batch 16) are left as shipped.
QS_OPTIONS = ('--cfg-options', 'train_cfg.max_epochs=3',
              'model.head.num_classes=3', 'data_preprocessor.num_classes=3')
# rock_b4's shipped loader settings (4 persistent training workers, batch 4,
# 2 validation workers) on the quick start's small pretrained backbone.
B4_LOADERS = ('train_dataloader.batch_size=4', 'val_dataloader.batch_size=4',
              'train_dataloader.num_workers=4',
              'train_dataloader.persistent_workers=True',
              'val_dataloader.num_workers=2')
NO_WORKERS = ('train_dataloader.batch_size=4', 'val_dataloader.batch_size=4',
              'train_dataloader.num_workers=0',
              'train_dataloader.persistent_workers=False',
              'val_dataloader.num_workers=0')
PLAIN_VAL = ('val_cfg.type=ValLoop', )
TINY_OPTIONS = ('--seed', '5', '--cfg-options', 'train_cfg.max_epochs=2')


def _read(path):
    with open(path) as f:
        return f.read()


def _assert_same_run(work, reference, epochs=3):
    name = f'epoch_{epochs}.pth'
    a = torch.load(osp.join(work, name), weights_only=True)['state_dict']
    b = torch.load(osp.join(reference, name), weights_only=True)['state_dict']
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in b)
    assert diff <= 1e-6
    assert _read(osp.join(work, 'history.csv')) == \
        _read(osp.join(reference, 'history.csv'))


def test_quickstart_killed_three_times_resumes_exactly(tiny_data, tmp_path):
    """Kills during epoch 1's validation (epoch_1.pth exists, and epoch 1 is
    always a new best: issue 14's unresumable run), mid-epoch 2 with the
    persistent workers busy, and while epoch_3.pth is being written."""
    reference = str(tmp_path / 'reference')
    train_killable(QUICKSTART, tiny_data, reference, *QS_OPTIONS)
    config = kill_config(tmp_path, QUICKSTART, [
        ('val_iter', 1, 1), ('train_iter', 2, 1), ('ckpt_write', 3)])
    work = str(tmp_path / 'run')
    train_killable(config, tiny_data, work, *QS_OPTIONS, killed=True)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert not osp.exists(osp.join(work, 'history.csv'))  # row 1 was lost
    log = train_killable(config, tiny_data, work, *QS_OPTIONS, resume=True,
                         killed=True).stdout
    assert 'validating the resumed epoch 1' in log
    assert 'best checkpoint with' in log  # saved while resuming: no crash
    train_killable(config, tiny_data, work, *QS_OPTIONS, resume=True,
                   killed=True)
    assert glob.glob(osp.join(work, '.epoch_3.pth.*.tmp'))
    assert not osp.exists(osp.join(work, 'epoch_3.pth'))
    assert _read(osp.join(work, 'last_checkpoint')).endswith('epoch_2.pth')
    train_killable(config, tiny_data, work, *QS_OPTIONS, resume=True)
    _assert_same_run(work, reference)
    columns = _read(osp.join(work, 'history.csv')).splitlines()[0]
    for name in ('train_accuracy/top1', 'train_precision', 'train_recall',
                 'train_f1-score', 'val_loss'):
        assert name in columns.split(',')


def test_b4_loader_settings_resume_exactly_and_match_no_workers(
        tiny_data, tmp_path):
    """One run with rock_b4's loaders and cached validation, as shipped;
    the same seed with no workers and the plain ValLoop, killed mid-epoch 2
    and resumed with 4 persistent workers: the same weights and history,
    val_loss included (the cache changes no number; the worker count and the
    kill change no augmentation)."""
    reference = str(tmp_path / 'reference')
    train_killable(QUICKSTART, tiny_data, reference, *QS_OPTIONS, *B4_LOADERS)
    config = kill_config(tmp_path, QUICKSTART, [('train_iter', 2, 2)])
    work = str(tmp_path / 'run')
    train_killable(config, tiny_data, work, *QS_OPTIONS, *NO_WORKERS,
                   *PLAIN_VAL, killed=True)
    train_killable(config, tiny_data, work, *QS_OPTIONS, *B4_LOADERS,
                   *PLAIN_VAL, resume=True)
    _assert_same_run(work, reference)


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_data, tmp_path):
    config = kill_config(tmp_path, TINY_CONFIG, [('train_iter', 1, 1)])
    work = str(tmp_path / 'run')
    train_killable(config, tiny_data, work, *TINY_OPTIONS, killed=True)
    proc = run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu',
                    '--data-root', tiny_data, '--work-dir', work, '--resume',
                    *TINY_OPTIONS, check=False)
    assert proc.returncode == 2
    assert 'found no checkpoint to continue' in proc.stderr
