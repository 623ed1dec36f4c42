"""Accidents around a training run, as a user meets them: two runs in one
work dir, a fresh run over a finished one, checkpoints of another class
count, ignored flags and ``--cfg-options`` typos; and the Slurm launchers.

The flag checks run in-process through ``run_cli`` (what the tools run) to
keep the suite fast; every other case is a real ``python tools/...``.
"""
import contextlib
import csv
import io
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import (REPO, TINY_CONFIG, load_tool, make_class_folders,
                      run_tool)

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
TRAIN = ('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '1')
FOUR = ('--cfg-options', 'model.head.num_classes=4',
        'data_preprocessor.num_classes=4')


@pytest.fixture(scope='module')
def two_runs(tiny_data, tmp_path_factory):
    """Two trainings of one epoch started at once into one work dir."""
    work = str(tmp_path_factory.mktemp('safety') / 'run')
    cmd = [sys.executable, *TRAIN, '--data-root', tiny_data, '--work-dir',
           work, '--cfg-options', 'train_cfg.max_epochs=1']
    procs = [subprocess.Popen(cmd, cwd=REPO, env=ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    return work, [(p.returncode, out + err)
                  for p, (out, err) in zip(procs, outs)]


def _history(work):
    with open(osp.join(work, 'history.csv'), newline='') as f:
        return list(csv.DictReader(f))


def _cli(tool, argv, monkeypatch):
    """``run_cli(tools/<tool>.py main, argv)`` in-process: (code, stderr)."""
    run_cli = load_tool('_common').run_cli
    for name in ('CUDA_VISIBLE_DEVICES', 'LOCAL_RANK'):  # restored after
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(load_tool(tool).main, list(argv))
    return code, err.getvalue()


def test_two_runs_at_once_one_is_refused_and_nothing_is_lost(two_runs):
    work, results = two_runs
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], [log[-3000:] for _, log in results]
    refused = next(log for code, log in results if code == 2)
    assert f'error: {work}: ' in refused and 'Traceback' not in refused
    # Usually the lock; if the loser started after the winner finished, the
    # earlier-run guard. Either way it touched nothing.
    assert 'another run is using this work dir' in refused or \
        'holds the checkpoints of an earlier run' in refused
    assert [r['epoch'] for r in _history(work)] == ['1']
    assert [f for f in os.listdir(work) if f.startswith('best_')]
    torch.load(osp.join(work, 'epoch_1.pth'), weights_only=True)


def test_a_held_lock_refuses_a_second_run(tiny_data, tmp_path, monkeypatch):
    from rock_plugin.utils.work_dir import WorkDirLock
    work = str(tmp_path / 'busy')
    with WorkDirLock(work):  # as a running training holds it
        code, err = _cli('train', [*TRAIN[1:], '--data-root', tiny_data,
                                   '--work-dir', work], monkeypatch)
    assert code == 2
    assert f'{work}: another run is using this work dir (pid {os.getpid()}' \
        in err and 'give this run its own --work-dir\n' in err
    assert os.listdir(work) == ['.lock']
    # released: the lock does not outlive its holder
    with WorkDirLock(work):
        pass


def test_fresh_run_over_a_finished_run(two_runs, tiny_data, tmp_path,
                                       monkeypatch):
    """A new run into a finished work dir is refused; --fresh moves the old
    run aside, so a --resume after a crash can never continue it."""
    finished, _ = two_runs
    work = str(tmp_path / 'run')
    subprocess.run(['cp', '-r', finished, work], check=True)
    before = sorted(os.listdir(work))
    proc = run_tool(*TRAIN, '--data-root', tiny_data, '--work-dir', work,
                    check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'holds the checkpoints of an earlier run' in proc.stderr
    assert '--resume' in proc.stderr and '--fresh' in proc.stderr
    assert sorted(os.listdir(work)) == before
    # --fresh, then the run dies before its first checkpoint (here: a typo)
    code, err = _cli('train', [*TRAIN[1:], '--data-root', tiny_data,
                               '--work-dir', work, '--fresh', '--cfg-options',
                               'train_cfg.max_epoch=3'], monkeypatch)
    assert code == 2 and 'max_epoch' in err
    archived = os.listdir(osp.join(work, 'previous_runs'))
    assert len(archived) == 1
    old = osp.join(work, 'previous_runs', archived[0])
    assert {'epoch_1.pth', 'history.csv', 'last_checkpoint'} <= \
        set(os.listdir(old))
    # --resume finds nothing of the old run to continue
    code, err = _cli('train', [*TRAIN[1:], '--data-root', tiny_data,
                               '--work-dir', work, '--resume'], monkeypatch)
    assert code == 2 and 'found no checkpoint to continue' in err
    code, err = _cli('train', [*TRAIN[1:], '--work-dir', work, '--resume',
                               '--fresh'], monkeypatch)
    assert code == 2 and 'give one of them' in err


def test_package_names_settings_and_the_tool_names_its_flags(tmp_path):
    """The package has no command line: its error names the config key and
    argument; tools/train.py's flag_hint turns them into its flags in the
    same error (type kept), leaving the work dir's own name alone."""
    from rock_plugin.utils.errors import WorkDirError
    from rock_plugin.utils.work_dir import prepare_fresh_run
    work = tmp_path / 'cfg.work_dir'  # a path that reads like a key
    work.mkdir()
    (work / 'epoch_1.pth').write_bytes(b'')
    with pytest.raises(WorkDirError) as lib:
        prepare_fresh_run(str(work))
    assert str(lib.value) == (
        f'{work}: holds the checkpoints of an earlier run (epoch_1.pth). '
        'Continue it with cfg.resume=True, start over with fresh=True '
        '(moves the earlier files into previous_runs/), or choose another '
        'cfg.work_dir')
    flag_hint = load_tool('_common').flag_hint
    with pytest.raises(WorkDirError) as tool, \
            flag_hint(load_tool('train').FLAG_HINTS):
        prepare_fresh_run(str(work))
    assert str(tool.value) == (
        f'{work}: holds the checkpoints of an earlier run (epoch_1.pth). '
        'Continue it with --resume, start over with --fresh (moves the '
        'earlier files into previous_runs/), or choose another --work-dir')


def test_test_refuses_a_checkpoint_of_another_class_count(two_runs,
                                                          tiny_data,
                                                          tmp_path):
    work, _ = two_runs
    ckpt = osp.join(work, 'epoch_1.pth')
    proc = run_tool('tools/test.py', TINY_CONFIG, ckpt, '--device', 'cpu',
                    '--data-root', tiny_data, '--work-dir',
                    str(tmp_path / 't'), *FOUR, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = next(ln for ln in proc.stderr.splitlines()
                if ln.startswith('error: '))
    assert line.startswith(f'error: {ckpt}: the checkpoint does not fit')
    assert 'head.fc.weight: checkpoint (3, 1280), model (4, 1280)' in line
    assert not osp.exists(osp.join(tmp_path, 't', 'test_results'))


def test_resume_with_another_class_count_is_a_clear_error(two_runs,
                                                          tmp_path):
    work, _ = two_runs
    four = make_class_folders(str(tmp_path / 'four'),
                              classes=('a', 'b', 'c', 'd'), per_class=3)
    ckpt = osp.join(work, 'epoch_1.pth')
    proc = run_tool(*TRAIN, '--data-root', four, '--work-dir',
                    str(tmp_path / 'w'), '--resume', ckpt, *FOUR,
                    'train_cfg.max_epochs=2', check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f'error: {ckpt}: the checkpoint does not fit' in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('tool,argv,expect', [
    ('train', ['--fold', '1'], '--fold only applies with --split-validation'),
    ('train', ['--ratio', '0.3', '--fold', '0'],
     '--ratio and --fold only apply with --split-validation'),
    ('test', ['CKPT', '--ratio', '0.3'],
     '--ratio only applies with --split-validation'),
    ('train', ['--device', 'tpu'], '--device tpu: not a device'),
    ('train', ['--cfg-options', 'epochs=3'],
     "--cfg-options epochs=3: the config has no setting 'epochs'"),
    ('train', ['--cfg-options', 'key'], '--cfg-options key: expected '
     'key=value'),
    ('train', ['--cfg-options', 'model.hed.num_classes=3'],
     "--cfg-options model.hed.num_classes=3: the config has no 'model.hed'"),
    ('train', ['--cfg-options', 'model.head.num_clases=3'],
     "--cfg-options model.head.num_clases=3: 'num_clases' is not a setting"),
    ('train', ['--cfg-options', 'train_cfg.max_epoch=2'],
     "--cfg-options train_cfg.max_epoch=2: 'max_epoch' is not a setting of "
     'EpochBasedTrainLoop'),
])
def test_ignored_or_misspelt_settings_are_errors(tool, argv, expect,
                                                 two_runs, tiny_data,
                                                 tmp_path, monkeypatch):
    work, _ = two_runs
    argv = [osp.join(work, 'epoch_1.pth') if a == 'CKPT' else a for a in argv]
    code, err = _cli(tool, [TINY_CONFIG, *argv[:1 if tool == 'test' else 0],
                            '--data-root', tiny_data, '--work-dir',
                            str(tmp_path / 'w'),
                            *argv[1 if tool == 'test' else 0:]], monkeypatch)
    assert code == 2
    first = next(ln for ln in err.splitlines() if ln.startswith('error: '))
    assert expect in first, err[-2000:]
    assert 'Traceback' not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason='has CUDA')
def test_device_cuda_without_cuda_is_an_error(tiny_data, tmp_path):
    proc = run_tool(*TRAIN[:2], '--device', 'cuda', '--data-root', tiny_data,
                    '--work-dir', str(tmp_path / 'w'), check=False)
    assert proc.returncode == 2
    assert 'error: --device cuda: no CUDA device is available here' in \
        proc.stderr
    assert not osp.exists(tmp_path / 'w')


@pytest.mark.parametrize('script,args', [
    ('slurm_train.sh', ['CONFIG', 'WORK']),
    ('slurm_test.sh', ['CONFIG', 'CKPT']),
])
def test_slurm_launchers(script, args, tmp_path):
    """mmpretrain's slurm_*.sh: srun gets the job, the tool its flags and
    ``--launcher slurm``. A fake srun records the call; the recorded task
    command line is then parsed by the tool itself."""
    record = tmp_path / 'srun_args'
    srun = tmp_path / 'bin' / 'srun'
    srun.parent.mkdir()
    srun.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    srun.chmod(0o755)
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'')
    values = dict(CONFIG=TINY_CONFIG, WORK=str(tmp_path / 'w'),
                  CKPT=str(ckpt))
    env = dict(ENV, PATH=f'{srun.parent}:{os.environ["PATH"]}', GPUS='4',
               GPUS_PER_NODE='2', PYTHON=sys.executable)
    subprocess.run(['bash', f'tools/{script}', 'gpu', 'rockjob',
                    *(values[a] for a in args), '--seed', '3'],
                   cwd=REPO, env=env, check=True, capture_output=True,
                   timeout=60)
    called = record.read_text().splitlines()
    assert called[:7] == ['-p', 'gpu', '--job-name=rockjob', '--gres=gpu:2',
                          '--ntasks=4', '--ntasks-per-node=2',
                          '--cpus-per-task=5']
    assert '--kill-on-bad-exit=1' in called
    task = called[called.index(sys.executable):]
    tool = 'train' if 'train' in script else 'test'
    assert task[1] == '-u' and task[2] == osp.join(REPO, 'tools',
                                                   f'{tool}.py')
    parsed = load_tool(tool).parse_args(task[3:])
    assert (parsed.config, parsed.launcher, parsed.seed) == (
        TINY_CONFIG, 'slurm', 3)
    if tool == 'train':
        assert parsed.work_dir == values['WORK']
    else:
        assert parsed.checkpoint == values['CKPT']


@pytest.mark.parametrize('fail', [False, True])
def test_a_distributed_rank_exits_with_its_code_after_flushing(fail,
                                                               tmp_path):
    """A rank (WORLD_SIZE > 1) leaves through ``os._exit`` to skip the
    interpreter teardown where gloo threads abort it; the exit code, the
    printed lines and the ``atexit`` handlers survive."""
    marker = tmp_path / 'atexit.txt'
    script = (
        'import atexit, sys\n'
        f'sys.path.insert(0, {osp.join(REPO, "tools")!r})\n'
        'import _common\n'
        'def main(argv):\n'
        f'    atexit.register(lambda: open({str(marker)!r}, "w")'
        '.write("ok"))\n'
        '    print("stdout line", end="")\n'
        '    sys.stderr.write("stderr line")\n'
        f'    if {fail}:\n'
        '        raise ValueError("bad input")\n'
        '_common.run(main, [])\n'
        'print("not reached")\n')
    env = dict(os.environ, WORLD_SIZE='2', PYTHONUNBUFFERED='0')
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == (2 if fail else 0), proc.stderr
    assert proc.stdout == 'stdout line'
    assert proc.stderr.startswith('stderr line')
    assert ('error: bad input' in proc.stderr) == fail
    assert marker.read_text() == 'ok'
