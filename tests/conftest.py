"""Shared fixtures: small generated images, paths, running tools as a user."""
import csv
import glob
import io
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DATA = osp.join(REPO, '..', 'shared', 'data', 'rock_thin_sections')
TINY_CONFIG = osp.join(REPO, 'tests', 'data', 'tiny_config.py')
TINY_CLASSES = ('alpha', 'beta', 'gamma')


def pytest_collection_modifyitems(config, items):
    """Tests of the tools run them end to end as a user would: mark them
    ``slow`` (``pytest -m 'not slow'`` runs the unit tests alone)."""
    tools = osp.join(REPO, 'tests', 'test_tools') + os.sep
    for item in items:
        if str(item.fspath).startswith(tools):
            item.add_marker(pytest.mark.slow)


def make_class_folders(root, classes=TINY_CLASSES, per_class=8, size=(48, 56),
                       seed=0):
    """Write ``per_class`` small JPEGs per class; each class has its own hue so
    that even a tiny model can learn them."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        os.makedirs(osp.join(root, name), exist_ok=True)
        for i in range(per_class):
            img = np.zeros((*size, 3), np.uint8)
            img[..., c % 3] = 180
            img = np.clip(img + rng.integers(0, 60, img.shape), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(
                osp.join(root, name, f'{name}_{i}.jpg'), quality=95)
    return root


def make_image(path, seed=0, size=(48, 40), mode='RGB', fmt=None):
    """Write a noise image (distinct bytes for each seed); return its path.

    ``mode`` may be any PIL mode (``'I;16'``: 16-bit gray); ``fmt`` forces a
    format whatever the extension."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == 'I;16':
        img = Image.fromarray((rng.random((h, w)) * 65535).astype(np.uint16))
    else:
        img = Image.fromarray(
            (rng.random((h, w, 3)) * 255).astype(np.uint8)).convert(mode)
    os.makedirs(osp.dirname(path), exist_ok=True)
    img.save(path, fmt)
    return path


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """A folder-per-class dataset: 3 classes x 8 images of 48x56."""
    return make_class_folders(str(tmp_path_factory.mktemp('tiny_data')))


@pytest.fixture(scope='session')
def shared_data():
    if not osp.isdir(SHARED_DATA):
        pytest.skip(f'shared real data not found at {SHARED_DATA}')
    return SHARED_DATA


def run_tool(*args, cwd=REPO, env=None, timeout=600, check=True,
             fresh=False):
    """Run ``python tools/<args>`` as a user would; return the
    CompletedProcess.

    A ``tools/*.py`` run is forked from this test process's tool server
    (``tool_server.py``: the same argv, cwd, environment, output and exit
    code, without ~5 s of torch and mmpretrain imports per run). ``fresh``,
    or any other command line, starts a new interpreter: for what happens at
    import time."""
    # One thread per process: the 2 CI cores are shared by parallel tests.
    full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1',
                **(env or {})}
    tool = osp.abspath(osp.join(str(cwd), str(args[0])))
    if not fresh and tool.startswith(osp.join(REPO, 'tools') + os.sep) \
            and tool.endswith('.py'):
        return _tool_server()(*args, cwd=cwd, env=full_env, timeout=timeout,
                              check=check, replace_env=True)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{args} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}'
            f'\nSTDERR:\n{proc.stderr[-4000:]}')
    return proc


_SERVER = []


def _tool_server():
    """This process's ``ToolServer`` (one per xdist worker), started on
    first use and closed at exit."""
    if not _SERVER:
        import atexit
        import tempfile

        from tool_server import ToolServer
        _SERVER.append(ToolServer(tempfile.mkdtemp(prefix='rock_tools_')))
        atexit.register(_SERVER[0].close)
    return _SERVER[0]


def free_port():
    """A TCP port free right now (for torch.distributed.run's PORT)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_launcher(script, *args, env=None, timeout=600):
    """Run ``bash tools/<script> ARGS`` (``dist_train.sh``,
    ``dist_test.sh``: two CPU processes under torch.distributed.run) on a
    free port; return ``(CompletedProcess, log)``, the log being stdout and
    stderr together. Python's fault handler is on, so a rank that aborts
    prints where every thread of it was."""
    full_env = {**os.environ, 'PORT': str(free_port()), 'OMP_NUM_THREADS': '1',
                'PYTHONUNBUFFERED': '1', 'PYTHONFAULTHANDLER': '1',
                'PYTHON': sys.executable, **(env or {})}
    proc = subprocess.run(['bash', f'tools/{script}', *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    return proc, proc.stdout + proc.stderr


def launcher_failure(proc) -> str:
    """The tails of a failed launcher run's stdout (the ranks' last log
    lines) and stderr (tracebacks, fault handler dumps)."""
    return (f'rc {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}'
            f'\n--- stderr ---\n{proc.stderr[-6000:]}')


def load_tool(name):
    """Import ``tools/<name>.py`` as a module (for its ``parse_args``,
    ``merge_args``...); ``name`` may name a sub-folder, e.g.
    ``'dataset/check_dataset'``. ``tools/`` and the tool's own folder go
    on ``sys.path`` as when it runs; a helper module (``'dataset/_checks'``)
    is imported by its plain name, the one copy its tools import."""
    import importlib
    import importlib.util
    tools = osp.join(REPO, 'tools')
    path = osp.join(tools, f'{name}.py')
    for folder in (tools, osp.dirname(path)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    base = osp.basename(name)
    if base.startswith('_'):
        return importlib.import_module(base)
    module_name = 'rock_tools_' + name.replace('/', '_')
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return sys.modules[module_name]


QUICKSTART = osp.join(REPO, 'configs', 'rock_quickstart.py')
DEMO_DATA = osp.join(REPO, 'demo', 'rock_thin_sections')


@pytest.fixture(scope='session')
def quickstart_model(tmp_path_factory):
    """``configs/rock_quickstart.py`` as shipped (bundled data, its loader
    settings), trained for 2 epochs with ``tools/train.py``: once per test
    run, shared by every file and every xdist worker (a file lock).

    Returns:
        dict: ``work_dir``, ``config`` (the config the run saved there),
        ``checkpoint`` (its last checkpoint) and the training ``log``.
    """
    from filelock import FileLock  # a torch dependency
    if not osp.isdir(DEMO_DATA):
        pytest.skip('bundled demo data missing')
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # shared by the workers of this run
    if os.environ.get('ROCK_PLUGIN_TEST_MODEL_DIR'):
        # Developers: keep the model between pytest sessions (never in CI).
        import pathlib
        base = pathlib.Path(os.environ['ROCK_PLUGIN_TEST_MODEL_DIR'])
        base.mkdir(parents=True, exist_ok=True)
    work = base / 'rock_quickstart_model'
    done = base / 'rock_quickstart_model.log'
    with FileLock(str(base / 'rock_quickstart_model.lock')):
        if not done.is_file():
            proc = run_tool('tools/train.py', QUICKSTART, '--work-dir',
                            str(work), '--device', 'cpu', '--cfg-options',
                            'train_cfg.max_epochs=2')
            done.write_text(proc.stdout + proc.stderr)
    last = next(p for p in (work / 'last.pth', work / 'epoch_2.pth')
                if p.is_file())
    return dict(work_dir=str(work), config=str(work / 'rock_quickstart.py'),
                checkpoint=str(last), log=done.read_text())


@pytest.fixture(scope='session')
def quickstart_onnx(quickstart_model):
    """The shared quick-start model exported with ``tools/export_onnx.py``
    (once per test run, file-locked like :func:`quickstart_model`)."""
    from filelock import FileLock
    out = osp.join(quickstart_model['work_dir'], 'quickstart.onnx')
    with FileLock(out + '.lock'):
        if not osp.isfile(out):
            run_tool('tools/export_onnx.py', quickstart_model['config'],
                     quickstart_model['checkpoint'], '--out', out)
    return out


KILL_HOOK = osp.join(REPO, 'tests', 'data', 'kill_hook.py')


def kill_config(tmp_path, base, points):
    """A config file: ``base`` with its own hooks plus
    ``KillAtHook(points=...)`` (``tests/data/kill_hook.py``), which SIGKILLs
    the run at those points."""
    from mmengine.config import Config
    hooks = [dict(h) for h in Config.fromfile(base).custom_hooks]
    hooks.append(dict(type='KillAtHook', points=points))
    path = tmp_path / 'kill_config.py'
    path.write_text(f'_base_ = [{base!r}]\n'
                    "custom_imports = dict(imports=['rock_plugin', "
                    "'kill_hook'], allow_failed_imports=False)\n"
                    f'custom_hooks = {hooks!r}\n')
    return str(path)


def train_killable(config, data, work, *options, resume=False,
                   killed=False):
    """``tools/train.py`` on ``data`` into ``work`` (``--resume`` with
    ``resume``); ``killed``: expect the kill hook's SIGKILL and check that
    every checkpoint left loads. Runs through :func:`run_tool` (this
    worker's tool server). Returns the CompletedProcess."""
    import signal

    import torch
    proc = run_tool('tools/train.py', config, '--device', 'cpu',
                    '--data-root', data, '--work-dir', work,
                    *(['--resume'] if resume else []), *options,
                    env=dict(PYTHONPATH=osp.dirname(KILL_HOOK)),
                    check=not killed)
    if killed:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        for path in glob.glob(osp.join(work, '*.pth')):
            torch.load(path, weights_only=True)  # nothing truncated
    return proc


def snapshot(root, mtime=False):
    """``{relative path: bytes}`` of every file under ``root`` (``mtime``:
    ``(bytes, st_mtime_ns)``), to prove that nothing changed."""
    found = {}
    for dirpath, _, files in os.walk(str(root)):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                data = f.read()
            found[osp.relpath(path, str(root)).replace(os.sep, '/')] = \
                (data, os.stat(path).st_mtime_ns) if mtime else data
    return found


def tiny_model(tmp_path_factory, tiny_data):
    """The tiny config trained for one epoch, plus a BN-recalibrated copy.

    ``trained`` is exactly what a user gets from ``tools/train.py``. Its
    frozen, randomly initialised B0 backbone runs in eval mode with the
    initial BN statistics, which shrink the features to ~1e-14: every image
    then gets the same scores, and a test comparing two code paths could not
    see a wrong channel order or normalisation. ``calibrated`` is the same
    checkpoint (same meta, same head) with BN statistics measured on the tiny
    images, so its scores differ from image to image.

    Returns:
        dict: ``trained`` and ``calibrated`` checkpoint paths, ``work_dir``.
    """
    root = tmp_path_factory.getbasetemp() / 'rock_tiny_model'
    work = root / 'work'
    trained = work / 'epoch_1.pth'
    calibrated = root / 'calibrated.pth'
    if not trained.is_file():
        if work.exists():
            shutil.rmtree(work)
        run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed',
                 '1', '--data-root', tiny_data, '--work-dir', str(work),
                 '--cfg-options', 'train_cfg.max_epochs=1')
    if not calibrated.is_file():
        _recalibrate_bn(str(trained), tiny_data, str(calibrated))
    return dict(trained=str(trained), calibrated=str(calibrated),
                work_dir=str(work))


def _recalibrate_bn(checkpoint, data, out):
    import torch
    from mmengine.dataset import pseudo_collate
    from torch.nn.modules.batchnorm import _BatchNorm

    from rock_plugin.apis.inferencer import RockInferencer, list_images
    inferencer = RockInferencer(TINY_CONFIG, checkpoint)
    model = inferencer.model
    samples = [inferencer.load(f)[1] for f in list_images(data)]
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the pass
            module.train()
    with torch.no_grad():
        # model.backbone itself: the classifier may run a BN-folded copy of a
        # frozen backbone, whose statistics would not update.
        model.backbone(model.data_preprocessor(pseudo_collate(samples),
                                               False)['inputs'])
    model.eval()
    meta = torch.load(checkpoint, weights_only=True)['meta']
    torch.save(dict(meta=meta, state_dict=model.state_dict()), out + '.tmp')
    os.replace(out + '.tmp', out)


def read_csv_rows(path):
    """The rows of a CSV file written by a tool, as lists of strings."""
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.reader(f))


def read_csv_dicts(path):
    """The rows of a CSV file written by a tool, as dicts by header."""
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def file_magic(path, n):
    """The first ``n`` bytes of a file (its format's signature)."""
    with open(path, 'rb') as f:
        return f.read(n)


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal (progress bars draw)."""

    def isatty(self):
        return True


def no_ci_rank0(monkeypatch):
    """As on a developer's terminal: no ``CI``, rank 0."""
    monkeypatch.delenv('CI', raising=False)
    monkeypatch.delenv('RANK', raising=False)


@pytest.fixture
def mmpretrain_scope():
    """Builds by type name resolve in mmpretrain's registry, whatever
    default scope an earlier test of this worker left current (xdist
    orders tests differently from run to run)."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield
