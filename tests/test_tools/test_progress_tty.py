"""Progress bars as a user sees them: tools/predict.py on a folder, run on a
pseudo-terminal, draws one; with its output captured it prints exactly the
lines it printed before (no bar, no escape codes)."""
import os
import re
import select
import subprocess
import sys
import time

import pytest
from conftest import REPO, make_image, run_tool

ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')


def run_on_pty(args, env, timeout=600):
    """Run ``python args`` with stdin, stdout and stderr on one
    pseudo-terminal; the return code and everything it showed."""
    try:
        master, slave = os.openpty()
    except (AttributeError, OSError):  # Windows, or no /dev/ptmx
        pytest.skip('no pseudo-terminal on this machine')
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env,
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(), b''.join(chunks).decode('utf-8', 'replace')


def _rows(text):
    """The table rows and the header lines, without the timing."""
    lines = [ANSI.sub('', line).rstrip() for line in
             text.replace('\r\n', '\n').split('\n')]
    return [re.sub(r'\(\d+\.\d+ s, .*\)', '(TIME)', line.split('\r')[-1])
            for line in lines if line.strip() and '━' not in line]


def test_predict_folder_bar_on_a_terminal_only(quickstart_model, tmp_path):
    folder = tmp_path / 'images'
    for i in range(3):
        make_image(str(folder / f'img_{i}.jpg'), seed=i, size=(96, 80))
    args = ['tools/predict.py', quickstart_model['config'],
            quickstart_model['checkpoint'], str(folder)]
    env = {k: v for k, v in os.environ.items() if k != 'CI'}
    # wide enough that rich does not wrap the table's lines
    env.update(PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', COLUMNS='300',
               TERM='xterm')
    code, shown = run_on_pty(args, env)
    assert code == 0, shown[-3000:]
    assert re.search(r'predicting\s.*━+.*3/3.*eta \d:\d\d:\d\d',
                     ANSI.sub('', shown)), shown[-3000:]

    plain = run_tool(*args)  # captured: not a terminal
    assert plain.stderr.count('\x1b') == plain.stdout.count('\x1b') == 0
    assert '━' not in plain.stdout + plain.stderr
    assert 'eta ' not in plain.stdout + plain.stderr
    expected = _rows(plain.stdout)
    assert sum('img_' in r for r in expected) == 3  # the table's rows
    assert '3 predicted, 0 failed (TIME)' in expected
    # The terminal showed the same lines, the bar apart.
    assert [r for r in _rows(shown) if r in expected] == expected
    assert all('img_' not in r or r in expected for r in _rows(shown))
