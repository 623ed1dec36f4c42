"""HistoryHook, HistoryFigureHook, ResumeValidationHook on a stand-in runner:
figures drawn in the background and only when their data changed, a
damaged history kept aside, the resumed epoch validated once."""
import csv
import logging
import os.path as osp
import threading
from types import SimpleNamespace

import pytest

import rock_plugin.engine.hooks.history_figure_hook as figure_mod
from rock_plugin.evaluation import ClassReportMetric
from rock_plugin.engine.hooks import (HistoryFigureHook, HistoryHook,
                               ResumeValidationHook)

ROWS = [dict(epoch=1, lr=0.1, train_loss=1.0, val_loss=1.2,
             **{'accuracy/top1': 50.0, 'train_accuracy/top1': 60.0})]


def _write_history(work_dir, rows=ROWS):
    with open(osp.join(work_dir, 'history.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _runner(work_dir, confusion=((2, 0), (1, 1)), epoch=1, **kwargs):
    metric = ClassReportMetric()
    metric.last_details = dict(confusion=[list(r) for r in confusion],
                               classes=['a', 'b'])
    val_loop = SimpleNamespace(evaluator=SimpleNamespace(metrics=[metric]),
                               run=kwargs.pop('run', None))
    return SimpleNamespace(
        work_dir=str(work_dir), epoch=epoch, _train_loop=object(),
        val_loop=val_loop, logger=logging.getLogger('history_hook_test'),
        **kwargs)


def test_draws_in_background_and_finishes_before_the_run_ends(tmp_path,
                                                             monkeypatch):
    threads = []
    real = figure_mod.plot_curves

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(figure_mod, 'plot_curves', spy)
    _write_history(tmp_path)
    hook, runner = HistoryFigureHook(), _runner(tmp_path)
    hook.after_val_epoch(runner)
    hook.after_run(runner)  # waits for the drawing
    assert threads == ['HistoryFigureHook_0']
    for name in ('curves.png', 'confusion_matrix.png'):
        assert osp.getsize(tmp_path / name) > 1000
    assert (tmp_path / 'confusion_matrix.csv').read_text().splitlines() == \
        ['true \\ predicted,a,b', 'a,2,0', 'b,1,1']


def test_figures_redrawn_only_when_their_data_changes(tmp_path):
    _write_history(tmp_path)
    hook = HistoryFigureHook(background=False)
    png, curves = tmp_path / 'confusion_matrix.png', tmp_path / 'curves.png'
    hook.after_val_epoch(_runner(tmp_path))
    first, first_curves = png.stat().st_mtime_ns, curves.stat().st_mtime_ns
    hook.after_val_epoch(_runner(tmp_path, epoch=2))
    hook.after_train_epoch(_runner(tmp_path, epoch=2))
    assert png.stat().st_mtime_ns == first  # same matrix: kept
    assert curves.stat().st_mtime_ns == first_curves  # same history: kept
    _write_history(tmp_path, ROWS + [dict(ROWS[0], epoch=2)])
    hook.after_val_epoch(_runner(tmp_path, confusion=((1, 1), (1, 1))))
    assert png.stat().st_mtime_ns != first
    assert curves.stat().st_mtime_ns != first_curves


def test_a_stand_alone_validation_draws_nothing(tmp_path):
    _write_history(tmp_path)
    runner = _runner(tmp_path)
    runner._train_loop = dict(type='EpochBasedTrainLoop')  # tools/test.py
    HistoryFigureHook(background=False).after_val_epoch(runner)
    assert not list(tmp_path.glob('*.png'))


def test_a_failed_drawing_only_warns(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError('no fonts')

    monkeypatch.setattr(figure_mod, 'plot_curves', broken)
    _write_history(tmp_path)
    hook, runner = HistoryFigureHook(), _runner(tmp_path)
    hook.after_train_epoch(runner)
    with caplog.at_level(logging.WARNING, logger='history_hook_test'):
        hook.after_run(runner)
    assert 'drawing failed' in caplog.text and 'no fonts' in caplog.text


def test_damaged_history_is_kept_aside_on_resume(tmp_path, caplog):
    (tmp_path / 'history.csv').write_text('epoch,lr\n1,0.1\nxx,\x00\n')
    runner = _runner(tmp_path, epoch=2, model=SimpleNamespace())
    with caplog.at_level(logging.WARNING, logger='history_hook_test'):
        HistoryHook().before_train(runner)
    assert 'the history is damaged' in caplog.text
    assert not (tmp_path / 'history.csv').exists()
    kept = list(tmp_path.glob('history.*.csv'))
    assert len(kept) == 1 and '\x00' in kept[0].read_text()


@pytest.mark.parametrize('epoch,max_epochs,interval,validates', [
    (0, 3, 1, False),  # fresh run
    (2, 3, 1, True),
    (3, 3, 1, True),  # the last epoch: no epoch left to run after it
    (1, 4, 2, False),  # not an epoch the loop validates after
])
def test_resume_validation_runs_only_when_the_loop_would_have(
        epoch, max_epochs, interval, validates):
    runs = []
    runner = _runner('.', epoch=epoch, run=lambda: runs.append(1),
                     train_loop=SimpleNamespace(val_begin=1,
                                                val_interval=interval,
                                                max_epochs=max_epochs))
    ResumeValidationHook().before_train(runner)
    assert runs == ([1] if validates else [])


def test_head_output_stats_equal_a_direct_computation():
    """Train top-1/P/R/F1 from the training forward, val_loss per image with
    the head's loss, whatever the batch split."""
    import torch
    import torch.nn.functional as F
    from mmpretrain.models.heads import LinearClsHead
    from mmpretrain.structures import DataSample

    from rock_plugin.evaluation import HeadOutputStats, compute_rock_metrics
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    model = torch.nn.Module()
    # the head builds its loss in the current default scope, which an
    # earlier test in this worker may have left at 'mmengine'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model.head = head = LinearClsHead(num_classes=3, in_channels=4)
    feats = torch.randn(10, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    samples = [DataSample().set_gt_label(int(label)) for label in labels]
    stats = HeadOutputStats()
    stats.attach(model)
    stats.start_train_epoch()
    losses = []
    for part in (slice(0, 7), slice(7, 10)):  # batches of unequal size
        loss = head.loss((feats[part], ), samples[part])['loss'].item()
        losses.append(loss)
        stats.add_train_batch(samples[part], loss)
    values = stats.train_values()
    with torch.no_grad():
        scores = head((feats, ))
    expected = compute_rock_metrics(scores.numpy(), labels.numpy(), 3, (1, ))
    assert values['train_loss'] == pytest.approx(sum(losses) / 2)
    for key in ('accuracy/top1', 'precision', 'recall', 'f1-score'):
        assert values[f'train_{key}'] == pytest.approx(expected[key])
    stats.start_val()
    for part in (slice(0, 7), slice(7, 10)):
        with torch.no_grad():
            stats.add_val_batch(head.predict((feats[part], ),
                                             samples[part]))
    assert stats.val_loss(10) == pytest.approx(
        F.cross_entropy(scores, labels).item(), rel=1e-6)
    stats.detach()
    head((feats, ))
    assert stats._scores is None  # no longer listening
