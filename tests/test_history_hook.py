"""HistoryHook's figures: drawn in the background, all written before the run
ends, the confusion image only redrawn when the matrix changes."""
import logging
import os.path as osp
import threading
from types import SimpleNamespace

import numpy as np

from rock_plugin.hooks.history_hook import HistoryHook


def _runner(work_dir):
    return SimpleNamespace(work_dir=str(work_dir),
                           logger=logging.getLogger('history_hook_test'))


ROWS = [dict(epoch=1, lr=0.1, train_loss=1.0, **{'accuracy/top1': 50.0})]


def test_draws_in_background_and_finishes_before_the_run_ends(tmp_path,
                                                             monkeypatch):
    hook, runner = HistoryHook(), _runner(tmp_path)
    threads = []
    import rock_plugin.hooks.history_hook as mod
    real = mod.plot_curves

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, 'plot_curves', spy)
    hook._draw(runner, ROWS, [[2, 0], [1, 1]], ['a', 'b'], 1)
    hook.after_run(runner)  # waits for the drawing
    assert threads and threads[0].startswith('HistoryHook')
    assert osp.getsize(tmp_path / 'curves.png') > 1000
    assert osp.getsize(tmp_path / 'confusion_matrix.png') > 1000


def test_confusion_image_redrawn_only_when_the_matrix_changes(tmp_path):
    hook, runner = HistoryHook(plot_in_background=False), _runner(tmp_path)
    png = tmp_path / 'confusion_matrix.png'
    hook._draw(runner, ROWS, np.array([[2, 0], [1, 1]]), ['a', 'b'], 1)
    first = png.stat().st_mtime_ns
    hook._draw(runner, ROWS, [[2, 0], [1, 1]], ['a', 'b'], 2)
    assert png.stat().st_mtime_ns == first  # same matrix: kept
    hook._draw(runner, ROWS, [[1, 1], [1, 1]], ['a', 'b'], 3)
    assert png.stat().st_mtime_ns != first


def test_a_failed_drawing_only_warns(tmp_path, monkeypatch, caplog):
    import rock_plugin.hooks.history_hook as mod

    def broken(*args, **kwargs):
        raise RuntimeError('no fonts')

    monkeypatch.setattr(mod, 'plot_curves', broken)
    hook, runner = HistoryHook(), _runner(tmp_path)
    hook._draw(runner, ROWS, None, [], 1)
    with caplog.at_level(logging.WARNING, logger='history_hook_test'):
        hook.after_run(runner)
    assert 'drawing the curves failed' in caplog.text
    assert 'no fonts' in caplog.text
