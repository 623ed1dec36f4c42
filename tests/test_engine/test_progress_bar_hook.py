"""RichProgressBarHook: one bar for the training run (epoch, ETA of the
whole run), a passing one per val/test loop; the logger's lines stay; on
anything but a terminal it writes nothing."""
import io
import logging
import re
import sys
from types import SimpleNamespace

import pytest
from mmengine.logging import MMLogger
from mmengine.runner import EpochBasedTrainLoop

from conftest import FakeTTY, no_ci_rank0
from rock_plugin.engine.hooks import RichProgressBarHook


@pytest.fixture(autouse=True)
def no_ci(monkeypatch):
    no_ci_rank0(monkeypatch)


def fake_runner(rank=0):
    loop = object.__new__(EpochBasedTrainLoop)  # only its type is read
    return SimpleNamespace(
        rank=rank, train_loop=loop, max_epochs=2, max_iters=4, epoch=0,
        iter=0, val_loop=SimpleNamespace(dataloader=[0, 1]),
        test_loop=SimpleNamespace(dataloader=[0, 1, 2]))


def run_hooks(hook, runner, log):
    """Two epochs of two iterations, a validation, then a test, logging
    like the LoggerHook after each step."""
    hook.before_run(runner)
    hook.before_train(runner)
    for epoch in range(2):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        for i in range(2):
            hook.after_train_iter(runner, i)
            runner.iter += 1
            log(f'Epoch(train) [{epoch + 1}][{i + 1}/2] loss: 0.5')
    hook.before_val(runner)
    for i in range(2):
        hook.after_val_iter(runner, i)
    log('Epoch(val) [2][2/2] accuracy/top1: 50.0')
    hook.after_val(runner)
    hook.after_train(runner)
    hook.before_test(runner)
    hook.after_test_iter(runner, 0)
    hook.after_test(runner)
    hook.after_run(runner)


@pytest.fixture
def terminal(monkeypatch):
    """The current MMLogger printing to a fake terminal's stdout like the
    runner's (made before the bars); ``install()`` puts stdout and stderr
    there (in the test: pytest's capture resets them after fixtures)."""
    logger = MMLogger.get_current_instance()  # its handlers: not ours
    out, err = FakeTTY(), FakeTTY()
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)

    def install():
        monkeypatch.setattr(sys, 'stdout', out)
        monkeypatch.setattr(sys, 'stderr', err)
    yield SimpleNamespace(out=out, err=err, logger=logger, handler=handler,
                          install=install)
    logger.removeHandler(handler)


def test_terminal_shows_the_run_bar_and_keeps_the_log_lines(terminal):
    terminal.install()
    run_hooks(RichProgressBarHook(), fake_runner(), terminal.logger.info)
    err = terminal.err.getvalue()
    for text in ('train epoch 1/2', 'train epoch 2/2', '4/4', 'val ',
                 'test ', '━'):
        assert text in err, text
    assert re.search(r'eta \d:\d\d:\d\d', err)
    # The log lines were printed above the bars, through rich, complete.
    for line in ('Epoch(train) [1][1/2] loss: 0.5',
                 'Epoch(train) [2][2/2] loss: 0.5',
                 'Epoch(val) [2][2/2] accuracy/top1: 50.0'):
        assert line in err
    assert terminal.out.getvalue() == ''
    # ...and the handler writes to its own stream again afterwards.
    assert terminal.handler.stream is terminal.out
    terminal.logger.info('after the run')
    assert 'after the run' in terminal.out.getvalue()
    # The finished run bar is the last frame of the training display (the
    # val bar went); the test bar is drawn, then wiped.
    shown = err[:err.index('\x1b[?25h')].rsplit('\r', 1)[-1]
    assert '4/4' in shown and 'val' not in shown
    assert err.endswith('\x1b[1A\x1b[2K')


@pytest.mark.parametrize('case', ['not a tty', 'CI', 'rank 1', 'off'])
def test_elsewhere_it_writes_nothing(monkeypatch, terminal, case):
    terminal.install()
    enabled, rank = None, 0
    if case == 'not a tty':
        monkeypatch.setattr(sys, 'stderr', io.StringIO())
    elif case == 'CI':
        monkeypatch.setenv('CI', 'true')
    elif case == 'rank 1':
        enabled, rank = True, 1
    else:
        enabled = False
    run_hooks(RichProgressBarHook(enabled=enabled), fake_runner(rank),
              terminal.logger.info)
    assert terminal.err.getvalue() == '' and sys.stderr.getvalue() == ''
    # the log lines, exactly as without the hook
    assert terminal.out.getvalue().splitlines() == [
        'Epoch(train) [1][1/2] loss: 0.5', 'Epoch(train) [1][2/2] loss: 0.5',
        'Epoch(train) [2][1/2] loss: 0.5', 'Epoch(train) [2][2/2] loss: 0.5',
        'Epoch(val) [2][2/2] accuracy/top1: 50.0']


def test_forced_on_a_plain_stream(monkeypatch, terminal):
    terminal.install()
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    run_hooks(RichProgressBarHook(enabled=True), fake_runner(),
              terminal.logger.info)
    assert 'train epoch 2/2' in sys.stderr.getvalue()
