"""rock_plugin.utils.progress: bars with an ETA on a terminal, nothing
elsewhere."""
import io
import re

import pytest

from conftest import FakeTTY, no_ci_rank0
from rock_plugin.utils.progress import ProgressBar, progress_enabled, track

ETA = re.compile(r'eta \d:\d\d:\d\d')


@pytest.fixture(autouse=True)
def no_ci(monkeypatch):
    no_ci_rank0(monkeypatch)


def test_not_a_terminal_gives_the_iterable_back_and_writes_nothing(capsys):
    items, stream = [1, 2, 3], io.StringIO()
    assert track(items, 'images', stream=stream) is items
    assert track(items, 'images') is items  # pytest's stderr: no TTY
    with ProgressBar('export', stream=stream) as bar:
        bar.update(advance=1)
    assert stream.getvalue() == ''
    assert capsys.readouterr() == ('', '')


def test_terminal_draws_count_elapsed_and_eta():
    stream = FakeTTY()
    assert list(track(range(3), 'folds', stream=stream)) == [0, 1, 2]
    out = stream.getvalue()
    assert 'folds' in out and '3/3' in out and '━' in out
    assert ETA.search(out), out[-400:]


def test_ci_or_another_rank_turns_bars_off_unless_forced(monkeypatch):
    stream = FakeTTY()
    assert progress_enabled(stream=stream)
    monkeypatch.setenv('CI', 'true')
    assert not progress_enabled(stream=stream)
    items = [1]
    assert track(items, 'x', stream=stream) is items
    assert stream.getvalue() == ''
    # enabled=True: drawn anyway, on any stream (a CI log)
    plain = io.StringIO()
    list(track(range(2), 'forced', stream=plain, enabled=True))
    assert '2/2' in plain.getvalue() and ETA.search(plain.getvalue())
    monkeypatch.setenv('CI', 'false')
    monkeypatch.setenv('RANK', '1')
    assert not progress_enabled(stream=stream)


def test_nested_bars_share_one_display_and_inner_ones_go():
    stream = FakeTTY()
    for _ in track(range(2), 'folds', transient=False, stream=stream):
        with ProgressBar('train', total=2, stream=stream) as bar:
            bar.update(advance=2)
    from rock_plugin.utils.progress import _shared
    assert _shared == dict(progress=None, bars=0)
    out = stream.getvalue()
    assert 'train' in out and '2/2' in out
    # the last frame, left on screen, has the outer bar alone
    last = out.rstrip().rsplit('\r', 1)[-1]
    assert 'folds' in last and 'train' not in last
