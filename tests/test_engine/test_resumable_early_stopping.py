"""ResumableEarlyStoppingHook: ``--patience`` counts on across ``--resume``
(mmengine's EarlyStoppingHook restarted its count and best score)."""
import glob
import os.path as osp
import re

import torch
from mmengine.config import Config

from conftest import TINY_CONFIG, kill_config, load_tool, train_killable

# lr 0: the weights never change, so patience 2 stops soon after epoch 1.
OPTIONS = ('--seed', '0', '--patience', '2', '--cfg-options',
           'train_cfg.max_epochs=6', 'optim_wrapper.optimizer.lr=0')


def _train(config, data, work, resume=False, killed=False):
    proc = train_killable(config, data, work, *OPTIONS, resume=resume,
                          killed=killed)
    return proc.stdout + proc.stderr


def _epochs(work):
    """The epochs that were trained (their checkpoints)."""
    return sorted(int(re.search(r'epoch_(\d+)\.pth$', p).group(1))
                  for p in glob.glob(osp.join(work, 'epoch_*.pth')))


def test_a_resumed_run_stops_where_the_uninterrupted_one_did(tiny_data,
                                                             tmp_path):
    reference = str(tmp_path / 'reference')
    log = _train(TINY_CONFIG, tiny_data, reference)
    assert 'did not improve in the last 2 records' in log
    stop = _epochs(reference)[-1]
    assert 3 <= stop < 6, log[-3000:]  # early stopping ended it
    config = kill_config(tmp_path, TINY_CONFIG, [('train_iter', 3, 1)])
    work = str(tmp_path / 'run')
    _train(str(config), tiny_data, work, killed=True)
    assert _epochs(work) == [1, 2]
    # epoch_2.pth was written before epoch 2's validation: epoch 1 is the
    # best so far, no validation without improvement yet; plain numbers.
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), weights_only=True)
    state = ckpt['meta']['early_stopping']
    assert state['monitor'] == 'accuracy/top1' and state['rule'] == 'greater'
    assert state['wait_count'] == 0 and 0 <= state['best_score'] <= 100
    log = _train(str(config), tiny_data, work, resume=True)
    assert 'ResumableEarlyStoppingHook: resumed with best accuracy/top1' \
        in log
    assert 'did not improve in the last 2 records' in log
    # mmengine's hook, counting afresh, would have trained on to epoch 4+
    assert _epochs(work) == _epochs(reference)


def test_patience_makes_a_configs_plain_hook_resumable():
    set_early_stopping = load_tool('_config_flags').set_early_stopping
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.custom_hooks = [dict(type='EarlyStoppingHook', monitor='loss',
                             rule='less', min_delta=0.5, patience=9)]
    set_early_stopping(cfg, 3)
    assert cfg.custom_hooks == [dict(
        type='ResumableEarlyStoppingHook', monitor='loss', rule='less',
        min_delta=0.5, patience=3)]
    set_early_stopping(cfg, 4)  # recognised again, not added twice
    assert len(cfg.custom_hooks) == 1 and cfg.custom_hooks[0].patience == 4
    plain = Config.fromfile(TINY_CONFIG)
    set_early_stopping(plain, 2)
    early = [h for h in plain.custom_hooks if 'EarlyStopping' in h.type]
    assert early == [dict(type='ResumableEarlyStoppingHook',
                          monitor='accuracy/top1', rule='greater',
                          patience=2)]


def test_state_is_restored_only_on_resume_and_for_the_same_metric():
    from types import SimpleNamespace
    from unittest import mock

    from rock_plugin.engine.hooks import ResumableEarlyStoppingHook
    saved = ResumableEarlyStoppingHook(monitor='accuracy/top1', patience=3)
    saved.wait_count, saved.best_score = 2, 87.5
    checkpoint = dict(meta=dict(epoch=4))
    saved.before_save_checkpoint(None, checkpoint)
    runner = SimpleNamespace(_resume=True, logger=mock.Mock())
    resumed = ResumableEarlyStoppingHook(monitor='accuracy/top1', patience=3)
    resumed.after_load_checkpoint(runner, checkpoint)
    assert (resumed.wait_count, resumed.best_score) == (2, 87.5)
    loaded = ResumableEarlyStoppingHook(monitor='accuracy/top1')
    loaded.after_load_checkpoint(SimpleNamespace(_resume=False), checkpoint)
    assert (loaded.wait_count, loaded.best_score) == (0, float('-inf'))
    other = ResumableEarlyStoppingHook(monitor='loss', rule='less')
    other.after_load_checkpoint(runner, checkpoint)
    assert (other.wait_count, other.best_score) == (0, float('inf'))
    assert 'patience starts afresh' in runner.logger.info.call_args[0][0]
