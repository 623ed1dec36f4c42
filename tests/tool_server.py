"""Run ``python tools/x.py ...`` without paying the ~5 s of torch, mmengine
and mmpretrain imports every time: :class:`ToolServer` forks each run from a
server process that imported them once.

Each run is still its own process, run as ``python tools/x.py ...`` runs
it: ``__main__``, ``sys.argv``, the tool's folder first on ``sys.path``
(then ``PYTHONPATH``), its cwd and environment, its own stdout and stderr,
its exit code (minus the signal that killed it), non-daemon threads and
``atexit`` handlers at exit. ``rock_plugin`` is not imported before the
tool imports it. For tests that run many tools in one module; a test of
what a fresh interpreter does (imports, warnings) uses ``run_tool``.
"""
import json
import os
import subprocess
import sys

from conftest import REPO

_SERVER = r'''
import atexit, faulthandler, json, os, runpy, signal, sys, threading
import time, traceback
import torch, mmengine.runner, mmpretrain.apis, mmpretrain.datasets  # noqa
import mmpretrain.models, sklearn.metrics  # noqa
assert not [m for m in sys.modules if m.split('.')[0] == 'rock_plugin']
assert not torch.cuda.is_initialized()  # forked children may use CUDA
reply = os.fdopen(os.dup(1), 'w')


def group(pgid):
    found = []
    for name in os.listdir('/proc'):
        try:
            with open(f'/proc/{name}/stat') as f:
                # pid (comm) state ppid pgrp ...; comm may hold spaces
                if int(f.read().rsplit(')', 1)[1].split()[2]) == pgid:
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return sorted(found)


for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            reply.close()
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            for fd, path in ((1, job['out']), (2, job['err'])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644), fd)
            # A run that hangs says where before it is killed: SIGUSR1 to
            # each process of its group dumps the stacks of the run and of
            # its data loader workers (forked: they inherit the handler).
            os.setpgrp()
            faulthandler.register(signal.SIGUSR1, all_threads=True)
            os.chdir(job['cwd'])
            if job['replace_env']:
                os.environ.clear()
            os.environ.update(job['env'])
            sys.argv = list(job['args'])
            sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
            extra = job['env'].get('PYTHONPATH')
            sys.path[1:1] = extra.split(os.pathsep) if extra else []
            try:
                runpy.run_path(sys.argv[0], run_name='__main__')
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else \
                    (exc.code is not None)
                if not isinstance(exc.code, (int, type(None))):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            threading._shutdown()  # then atexit, as at a normal exit
            atexit._run_exitfuncs()
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + job['timeout']
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            try:
                for member in group(pid):  # one by one: dumps not mixed
                    os.kill(member, signal.SIGUSR1)
                    time.sleep(1)
                os.killpg(pid, signal.SIGKILL)  # its workers too
            except ProcessLookupError:  # killed before its setpgrp
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = None
            break
        time.sleep(0.05)
    reply.write(json.dumps(status) + '\n')
    reply.flush()
'''


class ToolTimeout(subprocess.TimeoutExpired):
    """A run past its timeout; its message ends with the tails of the run's
    stdout (its last log lines) and stderr (the stack dumps of the run and
    of its workers, taken just before the kill)."""

    def __str__(self):
        return (f'{super().__str__()}\nSTDOUT:\n{self.stdout[-3000:]}'
                f'\nSTDERR:\n{self.stderr[-12000:]}')


class ToolServer:
    """:func:`conftest.run_tool` (same arguments, same CompletedProcess or
    errors) for ``tools/*.py``, each run forked from one server, one run at
    a time; ``replace_env=True``: ``env`` is the run's whole environment.

    Args:
        tmp_dir: A folder for the runs' output files.

    Example:
        >>> with ToolServer(tmp_path) as tool:
        ...     proc = tool('tools/predict.py', config, ckpt, image)
    """

    def __init__(self, tmp_dir):
        # Forks after imports: CUDA must not be initialised before (NVML
        # answers is_available()); one thread each, as run_tool sets.
        env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1',
               'PYTORCH_NVML_BASED_CUDA_CHECK': '1'}
        self.tmp, self.count = str(tmp_dir), 0
        os.makedirs(self.tmp, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, '-c', _SERVER], cwd=REPO, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, *args, cwd=REPO, env=None, timeout=600, check=True,
                 replace_env=False):
        self.count += 1
        out, err = (os.path.join(self.tmp, f'{self.count}.{s}')
                    for s in ('out', 'err'))
        self.proc.stdin.write(json.dumps(dict(
            args=[str(a) for a in args], out=out, err=err, cwd=str(cwd),
            env=env or {}, replace_env=replace_env,
            timeout=timeout)) + '\n')
        self.proc.stdin.flush()
        status = self.proc.stdout.readline()
        if not status:
            raise RuntimeError(f'the tool server ended ({self.proc.wait()})')
        status = json.loads(status)
        with open(out, errors='replace') as f_out, \
                open(err, errors='replace') as f_err:
            stdout, stderr = f_out.read(), f_err.read()
        if status is None:
            raise ToolTimeout(args, timeout, stdout, stderr)
        proc = subprocess.CompletedProcess(args, status, stdout, stderr)
        if check and status != 0:
            raise AssertionError(
                f'{args} exited {status}\nSTDOUT:\n{stdout[-4000:]}'
                f'\nSTDERR:\n{stderr[-4000:]}')
        return proc

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(60)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
