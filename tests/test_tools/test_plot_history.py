"""tools/analysis/plot_history.py: curves of one or several runs from
history.csv."""
import csv
import os.path as osp

import pytest

from conftest import TINY_CONFIG, load_tool, run_tool

ENV = dict(OMP_NUM_THREADS='1')
PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def two_runs(tiny_data, tmp_path_factory):
    """A real one-epoch run, and a second work dir whose history continues
    it for two more epochs (as a longer run would)."""
    root = tmp_path_factory.mktemp('plot_history')
    first = str(root / 'run_a')
    run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '1',
             '--data-root', tiny_data, '--work-dir', first, '--cfg-options',
             'train_cfg.max_epochs=1', env=ENV)
    with open(osp.join(first, 'history.csv'), newline='') as f:
        rows = list(csv.DictReader(f))
    second = root / 'run_b'
    second.mkdir()
    longer = [dict(rows[0], epoch=str(e),
                   train_loss=str(float(rows[0]['train_loss']) / e))
              for e in (1, 2, 3)]
    with open(second / 'history.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(longer)
    return first, str(second)


def _main():
    """The tool's function, loaded in-process for the quick error checks."""
    return vars(load_tool('analysis/plot_history'))


def test_two_work_dirs_on_one_figure(two_runs, tmp_path):
    first, second = two_runs
    out = str(tmp_path / 'compare.png')
    proc = run_tool('tools/analysis/plot_history.py', first,
                    osp.join(second, 'history.csv'), '--out', out, '--names',
                    'short', 'long', '--title', 'lr test', env=ENV)
    assert '2 run(s), 4 epochs' in proc.stdout and out in proc.stdout
    with open(out, 'rb') as f:
        assert f.read(8) == PNG


def test_default_out_and_names(two_runs, tmp_path, monkeypatch):
    run_cli = load_tool('_common').run_cli
    first, second = two_runs
    tool = _main()
    plot_history = tool['plot_history']
    # one run: curves.png beside its history
    assert plot_history([second]) == osp.join(second, 'curves.png')
    # several: compare_curves.png in the current folder
    monkeypatch.chdir(tmp_path)
    assert plot_history([first, second]) == 'compare_curves.png'
    assert osp.isfile(tmp_path / 'compare_curves.png')
    # two work dirs with the same name stay two runs
    assert run_cli(plot_history, [second, second, '--out',
                                  str(tmp_path / 'same.png')]) == 0


def test_missing_history_is_a_clear_error(two_runs, tmp_path, capsys):
    run_cli = load_tool('_common').run_cli
    first, _ = two_runs
    plot_history = _main()['plot_history']
    missing = str(tmp_path / 'no_run')
    assert run_cli(plot_history, [first, missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: {missing}: no history file')
    assert 'Traceback' not in err


def test_bad_arguments_are_clear_errors(two_runs, tmp_path, capsys):
    run_cli = load_tool('_common').run_cli
    first, _ = two_runs
    plot_history = _main()['plot_history']
    assert run_cli(plot_history, [first, '--names', 'a', 'b']) == 2
    assert '--names gives 2 names for 1 histories' in capsys.readouterr().err
    empty = tmp_path / 'empty.csv'
    empty.write_text('epoch,lr\n')
    assert run_cli(plot_history, [str(empty)]) == 2
    assert 'no rows' in capsys.readouterr().err
    other = tmp_path / 'other.csv'
    other.write_text('a,b\n1,2\n')
    assert run_cli(plot_history, [str(other)]) == 2
    assert 'no epoch column' in capsys.readouterr().err


@pytest.mark.parametrize('damage,where', [
    ('text', ':3: the history is damaged: train_loss is'),
    ('extra', ':2: the history is damaged: more values than columns'),
    ('nul', ': the history is damaged, not CSV text'),
])
def test_damaged_history_names_the_file(damage, where, tmp_path, capsys):
    """A hand-edited or half-copied history.csv: one error line naming the
    file (and line), no float() traceback."""
    path = tmp_path / 'history.csv'
    rows = ['epoch,lr,train_loss,accuracy/top1', '1,0.05,1.2,40.0',
            '2,0.05,1.1,50.0']
    if damage == 'text':
        rows[2] = '2,0.05,oops,50.0'
    elif damage == 'extra':
        rows[1] = '1,0.05,1.2,40.0,7'
    path.write_text('\n'.join(rows) + '\n')
    if damage == 'nul':
        path.write_bytes(path.read_bytes()[:40] + b'\0\0\0\n')
    if damage == 'text':  # as a user runs it
        proc = run_tool('tools/analysis/plot_history.py', str(path),
                        check=False)
        code, err = proc.returncode, proc.stderr
    else:  # the same code in-process, to keep the suite fast
        run_cli = load_tool('_common').run_cli
        code = run_cli(_main()['plot_history'], [str(path)])
        err = capsys.readouterr().err
    assert code == 2
    line = next(ln for ln in err.splitlines() if ln.startswith('error: '))
    assert line.startswith(f'error: {path}{where}'), line
    assert 'Traceback' not in err
    assert not (tmp_path / 'curves.png').exists()
