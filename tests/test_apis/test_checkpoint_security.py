"""No checkpoint runs code, on any entry point; importing the plugin patches
nothing; stock checkpoints load only on opt-in, and the opt-in runs no code.

The attacks, each written by :func:`write_attack` over a real checkpoint:

* ``config_text``: the plain-data attack. ``meta['config']``,
  ``meta['cfg']`` and the message hub's ``cfg`` hold Python that mmengine's
  ``Runner.resume`` / ``BaseInferencer`` would execute. The file loads (it
  is plain data); nothing may run.
* ``reduce``: a pickle ``__reduce__`` gadget calling ``os.system``.
* ``getattr``: the trust-mode gadget. ``builtins.getattr`` reaches the
  builtins module (``getattr.__self__``), stores ``eval`` as ``len`` in its
  ``__dict__``, then builds a ``HistoryBuffer`` whose ``__init__`` calls
  ``len(<attacker code>)``. Run with ``--trust-checkpoint``.
* ``empty``: a zero-byte file (a clear error, not ``IndexError``).

Gadgets are only ever loaded in subprocesses: a successful one would replace
``len`` in the test process.
"""
import builtins
import functools
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY_CONFIG, run_tool

ATTACKS = ('config_text', 'reduce', 'getattr', 'empty')


class _Reduce:
    def __init__(self, func, args, items=None):
        self.func, self.args, self.items = func, args, items

    def __reduce__(self):
        if self.items is None:
            return self.func, self.args
        return self.func, self.args, None, None, iter(self.items)


def _getattr_gadget(command: str):
    from mmengine.logging import HistoryBuffer
    module = _Reduce(getattr, (getattr, '__self__'))  # the builtins module
    evil = _Reduce(getattr, (module, 'eval'))
    poison = _Reduce(getattr, (module, '__dict__'), [('len', evil)])
    code = f"__import__('os').system({command!r})"
    return [poison, _Reduce(HistoryBuffer, (code, code, 20))]


def write_attack(kind: str, base: str, path: str, marker: str) -> str:
    """Write checkpoint ``path``: ``base`` turned into attack ``kind``."""
    command = f'touch {marker}'
    if kind == 'empty':
        open(path, 'wb').close()
        return path
    ckpt = torch.load(base, weights_only=True)
    if kind == 'config_text':
        text = f"x = __import__('os').system({command!r})\ngpu_ids = [0]\n"
        ckpt.setdefault('meta', {}).update(config=text, cfg=text)
        ckpt.setdefault('message_hub', {}).setdefault(
            'runtime_info', {})['cfg'] = text
    elif kind == 'reduce':
        ckpt['meta']['evil'] = _Reduce(os.system, (command, ))
    elif kind == 'getattr':
        ckpt['meta']['evil'] = _getattr_gadget(command)
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope='module')
def tool():
    """``run_tool`` without the exit check: the ~40 runs here fork from this
    worker's tool server; no refused run needs more than 300 s."""
    return functools.partial(run_tool, check=False, timeout=300)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_data):
    """A 1-epoch tiny run: its work dir and checkpoint."""
    work = str(tmp_path_factory.mktemp('sec_run'))
    run_tool('tools/train.py', TINY_CONFIG, '--work-dir', work,
             '--cfg-options', f'data_root={tiny_data}',
             f'train_dataloader.dataset.data_root={tiny_data}',
             f'val_dataloader.dataset.data_root={tiny_data}',
             'train_cfg.max_epochs=1')
    return work, osp.join(work, 'epoch_1.pth')


def _entry_points(config, ckpt, data, work):
    data_opts = ['--data-root', data]
    image = osp.join(data, 'alpha', 'alpha_0.jpg')
    return {
        'train --resume': ['tools/train.py', config, '--work-dir', work,
                           '--resume', ckpt, *data_opts, '--cfg-options',
                           'train_cfg.max_epochs=2'],
        'train load_from': ['tools/train.py', config, '--work-dir', work,
                            *data_opts, '--cfg-options', f'load_from={ckpt}',
                            'train_cfg.max_epochs=1'],
        'train init_cfg': ['tools/train.py', config, '--work-dir', work,
                           *data_opts, '--cfg-options',
                           'model.backbone.init_cfg.type=Pretrained',
                           f'model.backbone.init_cfg.checkpoint={ckpt}',
                           'model.backbone.init_cfg.prefix=backbone',
                           'train_cfg.max_epochs=1'],
        'test': ['tools/test.py', config, ckpt, '--work-dir', work,
                 *data_opts],
        'predict': ['tools/predict.py', config, ckpt, image],
        'export': ['tools/export_onnx.py', config, ckpt, '--out',
                   osp.join(work, 'm.onnx')],
    }


@pytest.mark.parametrize('attack', ATTACKS)
def test_no_entry_point_runs_code_from_a_checkpoint(attack, trained, tiny_data,
                                                    tool, tmp_path):
    work, base = trained
    marker = str(tmp_path / 'PWNED')
    ckpt = write_attack(attack, base, str(tmp_path / f'{attack}.pth'), marker)
    flags = ['--trust-checkpoint'] if attack == 'getattr' else []
    entry_points = _entry_points(TINY_CONFIG, ckpt, tiny_data,
                                 str(tmp_path / 'run'))
    if attack == 'config_text':  # data only: nothing to refuse there
        entry_points.pop('train init_cfg')
    else:  # the web demo serves until stopped; a refused file ends it
        entry_points['web demo'] = ['tools/web_demo.py', TINY_CONFIG, ckpt,
                                    '--port', '0']
    for name, args in entry_points.items():
        if name.startswith('train') and osp.isdir(tmp_path / 'run'):
            import shutil
            shutil.rmtree(tmp_path / 'run')
        proc = tool(*args, *flags)
        out = proc.stdout + proc.stderr
        assert not osp.exists(marker), f'{name}: code ran from {attack}'
        if attack == 'config_text':
            assert proc.returncode == 0, f'{name}:\n{out[-3000:]}'
        else:
            assert proc.returncode == 2, f'{name}:\n{out[-3000:]}'
            assert 'Traceback' not in out, f'{name}:\n{out[-3000:]}'
            assert ckpt in out, f'{name}: error does not name the file'
            if attack == 'reduce':  # trust mode would not help: not offered
                assert '--trust-checkpoint' not in out, out[-2000:]


@pytest.mark.parametrize('runner_type', ['Runner', None])
def test_plain_runner_config_never_resumes_with_mmengine_loading(
        runner_type, trained, tiny_data, tool, tmp_path):
    """A config that asks for mmengine's plain Runner (or none) still gets
    RockRunner: Runner.resume would run the checkpoint's config text."""
    work, base = trained
    marker = str(tmp_path / 'PWNED')
    ckpt = write_attack('config_text', base, str(tmp_path / 'c.pth'), marker)
    option = f'runner_type={runner_type}' if runner_type else \
        'runner_type=None'
    proc = tool('tools/train.py', TINY_CONFIG, '--work-dir',
                str(tmp_path / 'run'), '--resume', ckpt, '--data-root',
                tiny_data, '--cfg-options', option, 'train_cfg.max_epochs=2')
    assert not osp.exists(marker), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_foreign_runner_type_is_refused(trained, tiny_data, tool,
                                        tmp_path):
    proc = tool('tools/train.py', TINY_CONFIG, '--work-dir',
                str(tmp_path / 'run'), '--data-root', tiny_data,
                '--cfg-options', 'runner_type=FlexibleRunner')
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'not a subclass of SafeLoadingRunner' in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('field,value', [
    ('rng_state', {'python': 5}),
    ('history_pending', [1, 2]),
    ('meta.dataset_meta.classes', 'abc'),
    ('meta.seed', 'x'),
])
def test_malformed_checkpoint_data_is_one_line(field, value, trained,
                                               tiny_data, tool, tmp_path):
    """Values read from a checkpoint are data: a wrong type is one error
    line naming the file, never a traceback or a silent misreading."""
    work, base = trained
    ckpt = torch.load(base, weights_only=True)
    parent, *keys = field.split('.')
    if keys:
        node = ckpt[parent]
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    else:
        ckpt[parent] = value
    path = str(tmp_path / 'bad.pth')
    torch.save(ckpt, path)
    if field.startswith('meta.'):
        args = ['tools/test.py', TINY_CONFIG, path, '--work-dir',
                str(tmp_path / 'run'), '--data-root', tiny_data]
    else:
        args = ['tools/train.py', TINY_CONFIG, '--work-dir',
                str(tmp_path / 'run'), '--resume', path, '--data-root',
                tiny_data, '--cfg-options', 'train_cfg.max_epochs=2']
    proc = tool(*args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert path in proc.stderr and field.split('.')[-1] in proc.stderr


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], cwd=REPO, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.parametrize('attack', ('config_text', 'reduce', 'getattr'))
def test_python_api_runs_no_code(attack, trained, tiny_data, tmp_path):
    work, base = trained
    marker = str(tmp_path / 'PWNED')
    ckpt = write_attack(attack, base, str(tmp_path / f'{attack}.pth'), marker)
    image = osp.join(tiny_data, 'alpha', 'alpha_0.jpg')
    proc = _python(
        'import os\n'
        "os.environ['ROCK_PLUGIN_TRUST_CHECKPOINTS'] = '1'\n"
        'from rock_plugin.apis.inferencer import RockInferencer\n'
        'from rock_plugin.utils.errors import CheckpointError\n'
        'try:\n'
        f'    inf = RockInferencer({TINY_CONFIG!r}, {ckpt!r})\n'
        f'    print("PRED", inf([{image!r}]))\n'
        'except CheckpointError as exc:\n'
        '    print("REFUSED", exc)\n')
    assert not osp.exists(marker), proc.stdout + proc.stderr
    expected = 'PRED' if attack == 'config_text' else 'REFUSED'
    assert expected in proc.stdout, proc.stdout + proc.stderr


def test_loader_strips_config_text_and_reads_gpu_ids_as_data(trained,
                                                             tmp_path):
    from rock_plugin.utils.checkpoint_io import (load_checkpoint_file,
                                                 read_config_literal)
    marker = str(tmp_path / 'PWNED')
    ckpt = write_attack('config_text', trained[1],
                        str(tmp_path / 'c.pth'), marker)
    loaded = load_checkpoint_file(ckpt)
    assert 'config' not in loaded['meta'] and 'cfg' not in loaded['meta']
    assert 'cfg' not in loaded['message_hub']['runtime_info']
    assert loaded['meta']['gpu_ids'] == [0]
    assert read_config_literal('gpu_ids = __import__("os")', 'gpu_ids') \
        is None
    assert not osp.exists(marker)


def test_stock_checkpoint_loads_only_on_opt_in(tmp_path):
    """A stock mmengine checkpoint (HistoryBuffer, numpy) is refused by
    default and loads, HistoryBuffer intact, in trust mode."""
    code = (
        'import numpy as np, torch\n'
        'from mmengine.logging import HistoryBuffer, MessageHub\n'
        'from rock_plugin.utils.checkpoint_io import load_checkpoint_file\n'
        'from rock_plugin.utils.errors import CheckpointError\n'
        "hub = MessageHub('t'); hub.update_scalar('train/loss', 0.5)\n"
        "hub.update_info('m', np.eye(2))\n"
        f"path = {str(tmp_path / 'stock.pth')!r}\n"
        "torch.save(dict(meta=dict(epoch=1), state_dict={'w': torch.ones(2)},"
        ' message_hub=hub.state_dict()), path)\n'
        'try:\n'
        '    load_checkpoint_file(path); print("LOADED-BY-DEFAULT")\n'
        'except CheckpointError as exc:\n'
        '    assert "ROCK_PLUGIN_TRUST_CHECKPOINTS=1 (or load it with '
        'trust=True)" in str(exc); print("REFUSED")\n'
        # a tool names its flag instead: tools/_common.COMMON_FLAG_HINTS
        'import sys; sys.path.insert(0, "tools")\n'
        'from _common import run_cli\n'
        'assert run_cli(lambda argv: load_checkpoint_file(path), []) == 2\n'
        'ck = load_checkpoint_file(path, trust=True)\n'
        "buf = ck['message_hub']['log_scalars']['train/loss']\n"
        'assert isinstance(buf, HistoryBuffer) and buf.mean() == 0.5\n'
        'print("TRUSTED-OK")\n')
    proc = _python(code)
    assert 'REFUSED' in proc.stdout and 'TRUSTED-OK' in proc.stdout, \
        proc.stdout + proc.stderr
    assert 'ROCK_PLUGIN_TRUST_CHECKPOINTS=1 or pass --trust-checkpoint, ' \
        'which allows' in proc.stderr, proc.stderr


def test_trust_mode_refuses_getattr_variations(tmp_path):
    """getattr in trust mode returns HistoryBuffer statistics only."""
    from rock_plugin.utils.checkpoint_io import _history_buffer_getattr
    import pickle
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer([1.0], [1])
    assert _history_buffer_getattr(buf, 'mean')() == 1.0
    for obj, name in ((builtins, 'eval'), (getattr, '__self__'),
                      (HistoryBuffer, '__init__'), (buf, '__init__'),
                      (buf, '__class__'), (os, 'system')):
        with pytest.raises(pickle.UnpicklingError):
            _history_buffer_getattr(obj, name)


def test_empty_and_truncated_files_are_one_clear_error(trained, tmp_path):
    from rock_plugin.utils.checkpoint_io import load_checkpoint_file
    from rock_plugin.utils.errors import CheckpointError
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        load_checkpoint_file(str(empty))
    data = open(trained[1], 'rb').read()
    cut = tmp_path / 'epoch_9.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt') as exc:
        load_checkpoint_file(str(cut))
    # no file is recommended by modification time (it could be anyone's)
    assert '--resume' not in str(exc.value)


def test_importing_the_plugin_changes_nothing_upstream():
    """Importing rock_plugin leaves mmengine's loaders, file backend and
    checkpoint hook exactly as they were."""
    code = (
        'import builtins\n'
        'from mmengine.runner.checkpoint import CheckpointLoader\n'
        'from mmengine.fileio.backends import local_backend\n'
        'from mmengine.hooks import checkpoint_hook\n'
        'before = (dict(CheckpointLoader._schemes), '
        'local_backend.LocalBackend.put, local_backend.LocalBackend.put_text,'
        " getattr(checkpoint_hook, 'open', builtins.open))\n"
        'import rock_plugin\n'
        'after = (dict(CheckpointLoader._schemes), '
        'local_backend.LocalBackend.put, local_backend.LocalBackend.put_text,'
        " getattr(checkpoint_hook, 'open', builtins.open))\n"
        'assert before == after, (before, after)\n'
        "assert after[3] is builtins.open\n"
        'print("UNCHANGED")\n')
    proc = _python(code)
    assert 'UNCHANGED' in proc.stdout, proc.stdout + proc.stderr


def test_runner_restores_mmengine_loaders_after_use(trained):
    from mmengine.runner.checkpoint import CheckpointLoader

    from rock_plugin.utils.checkpoint_io import (load_checkpoint_file,
                                                 safe_checkpoint_loaders)
    before = dict(CheckpointLoader._schemes)
    with safe_checkpoint_loaders():
        assert CheckpointLoader._schemes[''] is load_checkpoint_file
    assert CheckpointLoader._schemes == before


@pytest.mark.parametrize('attack', ('empty', 'truncated', 'reduce'))
def test_backbone_weights_option_goes_through_the_safe_loader(attack,
                                                              trained, tool,
                                                              tmp_path):
    """``--cfg-options model.backbone.weights=FILE`` (EfficientNet-Lite) is
    loaded like every other checkpoint: one clear error, nothing run."""
    marker = str(tmp_path / 'PWNED')
    path = str(tmp_path / f'{attack}.pth')
    if attack == 'truncated':
        data = open(trained[1], 'rb').read()
        open(path, 'wb').write(data[:len(data) // 3])
    else:
        write_attack(attack, trained[1], path, marker)
    proc = tool('tools/train.py', 'configs/rock_quickstart.py', '--work-dir',
                str(tmp_path / 'run'), '--cfg-options',
                f'model.backbone.weights={path}')
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and 'Traceback' not in out, out[-3000:]
    assert path in out and not osp.exists(marker)


def test_written_files_follow_the_umask(tmp_path):
    """Atomic writes used to create every result with mode 0600."""
    code = (
        'import os\n'
        'os.umask(0o022)\n'
        'from rock_plugin.utils.atomic_io import atomic_write\n'
        f'path = {str(tmp_path / "r.csv")!r}\n'
        'with atomic_write(path) as f:\n'
        '    f.write("x")\n'
        'print(oct(os.stat(path).st_mode & 0o777))\n')
    assert _python(code).stdout.strip() == '0o644'
