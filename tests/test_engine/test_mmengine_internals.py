"""The private mmengine names and undocumented behaviours rock_plugin relies
on (rock_plugin/engine/mmengine_internals.py), checked against the installed
mmengine: an upgrade that changes one fails here, naming it, instead of
silently changing what a run does."""
import ast
import glob
import hashlib
import inspect
import io
import os
import os.path as osp
import textwrap
import tokenize
from types import SimpleNamespace

import mmengine
import pytest
import torch
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from mmengine.runner import EpochBasedTrainLoop, Runner, ValLoop

from conftest import REPO
from rock_plugin.engine import mmengine_internals as mi

VERSION = f'mmengine {mmengine.__version__}'
INTERNALS = 'rock_plugin/engine/mmengine_internals.py'


def require(ok, name, consequence):
    """Fail with one message naming the mmengine attribute and what in
    rock_plugin depends on it."""
    if not ok:
        pytest.fail(f'{VERSION} changed {name}: {consequence} (see '
                    f'{INTERNALS})', pytrace=False)


# -- a real Runner on a toy model ------------------------------------------
class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.sum())
        return [out]


class Data(torch.utils.data.Dataset):

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return dict(inputs=torch.ones(2) * i)


def toy_runner(work_dir, runner_cls=Runner, **kwargs):
    loader = dict(dataset=Data(), batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    return runner_cls(
        model=Toy(), work_dir=str(work_dir), train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=1), **kwargs)


def test_runner_state_read_through_the_internals(tmp_path):
    for name in ('_resume', '_load_from', '_has_loaded', '_train_loop'):
        require(name in _self_assignments(Runner.__init__),
                f'Runner.{name}', 'Runner.__init__ no longer sets it')
    ckpt = str(tmp_path / 'given.pth')
    runner = toy_runner(tmp_path / 'w', resume=True, load_from=ckpt)
    require(mi.is_resuming(runner) is True, 'Runner._resume',
            'hooks cannot tell --resume from load_from (RNG state, '
            'history, early stopping, schedule ends)')
    require(mi.checkpoint_to_load(runner) == ckpt, 'Runner._load_from',
            'SafeLoadingRunner cannot choose the checkpoint to resume')
    require(mi.has_loaded(runner) is False, 'Runner._has_loaded',
            'SafeLoadingRunner.load_or_resume reads it')
    require(not mi.train_loop_is_built(runner), 'Runner._train_loop',
            'HistoryFigureHook tells a stand-alone validation by it')
    runner.train_loop  # built on first access
    require(mi.train_loop_is_built(runner), 'Runner._train_loop',
            'it no longer holds the built loop')
    plain = toy_runner(tmp_path / 'p')
    assert not mi.is_resuming(plain) and mi.checkpoint_to_load(plain) is None
    # load_or_resume takes the file set through the internals
    mi.set_checkpoint_to_load(plain, ckpt)
    seen = []
    plain.load_checkpoint = lambda filename, **kw: seen.append(filename)
    plain.load_or_resume()
    require(seen == [ckpt] and mi.has_loaded(plain),
            'Runner.load_or_resume / Runner._load_from',
            'the checkpoint set before load_or_resume is not the one loaded')
    # stand-ins (hook unit tests) answer from their own attribute
    assert mi.is_resuming(SimpleNamespace(_resume=True))
    assert not mi.is_resuming(SimpleNamespace())


def test_safe_loading_runner_checks_gpu_count_after_load(tmp_path):
    """The check moved behind super().load_checkpoint(): it still stops a
    resume from a checkpoint of another GPU count."""
    from rock_plugin.engine import SafeLoadingRunner
    path = str(tmp_path / 'two_gpus.pth')
    torch.save(dict(meta=dict(epoch=1, iter=1, gpu_ids=[0, 1]),
                    state_dict=Toy().state_dict()), path)
    runner = toy_runner(tmp_path / 'w', SafeLoadingRunner, resume=True,
                        load_from=path)
    with pytest.raises(RuntimeError, match='trained on 2 GPUs and this run '
                       'has 1 processes'):
        runner.load_or_resume()


def test_loop_counters():
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    loop._epoch, loop._iter = 3, 30
    mi.count_epoch(loop)
    mi.count_iter(loop)
    require((loop.epoch, loop.iter) == (4, 31),
            'EpochBasedTrainLoop._epoch / _iter',
            'the epoch / iter properties no longer read them, so '
            'FeatureCacheTrainLoop would not advance')
    for method, name in ((EpochBasedTrainLoop.run_epoch, '_epoch'),
                         (EpochBasedTrainLoop.run_iter, '_iter')):
        require(name in _augmented(method),
                f'EpochBasedTrainLoop.{method.__name__}',
                f'it no longer counts self.{name} (FeatureCacheTrainLoop '
                'does as it does)')


def test_val_loss_helpers():
    from mmengine.structures import BaseDataElement
    require(list(inspect.signature(mi.update_losses).parameters) ==
            ['outputs', 'losses'], 'mmengine.runner.loops._update_losses',
            'CachedFeatureValLoop records val losses through it')
    require(list(inspect.signature(mi.parse_losses).parameters) ==
            ['losses', 'stage'], 'mmengine.runner.loops._parse_losses',
            'CachedFeatureValLoop reports val losses through it')
    outputs = [BaseDataElement(), BaseDataElement(loss=dict(
        loss_cls=torch.tensor(2.0)))]
    kept, losses = mi.update_losses(outputs, {})
    assert len(kept) == 1 and set(losses) == {'loss_cls'}
    assert mi.parse_losses(losses, 'val') == dict(loss_cls=2.0,
                                                  val_loss=2.0)


# -- CheckpointHook ----------------------------------------------------------
def _fake_runner(work):
    name = f'internals_{osp.basename(work)}'

    def save_checkpoint(out_dir, filename, *args, **kwargs):
        with open(osp.join(out_dir, filename), 'wb') as f:
            f.write(b'ckpt')

    return SimpleNamespace(
        work_dir=str(work), logger=MMLogger.get_instance(name),
        message_hub=MessageHub.get_instance(name), epoch=0, iter=1,
        max_epochs=1, save_checkpoint=save_checkpoint)


def test_checkpoint_pointer_is_captured(tmp_path):
    """mmengine writes last_checkpoint into runner.work_dir, from the three
    public methods AtomicCheckpointHook wraps, and nowhere else."""
    work = tmp_path / 'run'
    work.mkdir()
    runner = _fake_runner(work)
    hook = CheckpointHook(interval=1)
    hook.before_train(runner)
    text = mi.capture_checkpoint_pointer(hook.after_train_epoch, runner)
    require(text == str(work / 'epoch_1.pth'),
            'CheckpointHook._save_checkpoint_with_step',
            f'it no longer writes the {mi.POINTER} pointer into '
            f'runner.work_dir (captured {text!r}), so AtomicCheckpointHook '
            'cannot write it atomically')
    assert sorted(os.listdir(work)) == ['epoch_1.pth']  # no scratch left
    nothing = mi.capture_checkpoint_pointer(hook.after_train_iter, runner, 0)
    assert nothing is None and sorted(os.listdir(work)) == ['epoch_1.pth']
    # the public methods that reach a save are the three it wraps
    savers = {'_save_checkpoint', '_save_best_checkpoint',
              '_save_checkpoint_with_step'}
    entry = {name for name, fn in vars(CheckpointHook).items()
             if not name.startswith('_') and callable(fn)
             and savers & _self_calls(fn)}
    require(entry == {'after_train_epoch', 'after_train_iter',
                      'after_val_epoch'}, 'CheckpointHook',
            f'checkpoints are now saved from {sorted(entry)}; '
            'AtomicCheckpointHook captures the pointer only in '
            'after_train_epoch, after_train_iter and after_val_epoch')


def test_checkpoint_hook_removes_only_through_file_backend():
    """AtomicCheckpointHook guards removals by wrapping ``file_backend``."""
    require('file_backend' in _self_assignments(CheckpointHook.before_train),
            'CheckpointHook.before_train',
            'it no longer sets self.file_backend')
    tree = ast.parse(textwrap.dedent(inspect.getsource(CheckpointHook)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and \
                isinstance(node.func, ast.Attribute) and \
                node.func.attr in ('remove', 'rmtree', 'unlink', 'rmdir'):
            target = ast.unparse(node.func.value)
            require(target == 'self.file_backend', 'CheckpointHook',
                    f'it removes files through {target}.{node.func.attr} '
                    'at line ' f'{node.lineno}, past the out_dir guard')


def test_checkpoint_io_internals():
    """Used by rock_plugin/utils/checkpoint_io.py (plain-type checkpoints,
    trust mode, scoped safe loaders)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader
    buffer = HistoryBuffer([1.0, 2.0], [1, 1], 10)
    for name in ('_log_history', '_count_history'):
        require(isinstance(getattr(buffer, name, None), np.ndarray),
                f'HistoryBuffer.{name}', 'to_plain saves it')
    require({'min', 'max', 'current', 'mean'} <=
            set(getattr(HistoryBuffer, '_statistics_methods', {})),
            'HistoryBuffer._statistics_methods',
            "trust mode's getattr allows only these")
    schemes = getattr(CheckpointLoader, '_schemes', None)
    require(isinstance(schemes, dict) and '' in schemes,
            'CheckpointLoader._schemes',
            'safe_checkpoint_loaders swaps and restores it')


# -- mmengine code rock_plugin mirrors -----------------------------------
# (function, its fingerprint in mmengine 0.10.7, the rock_plugin code that
# depends on it)
PINNED = [
    (ValLoop.run, '78f9c7a8442fd5df',
     'CachedFeatureValLoop.run repeats its steps'),
    (ValLoop.run_iter, 'd15904a96d00674f',
     'CachedFeatureValLoop._run_batches repeats its steps'),
    (EpochBasedTrainLoop.run_epoch, 'd6ab3711dec30dc5',
     'FeatureCacheTrainLoop.run_epoch repeats its steps'),
    (EpochBasedTrainLoop.run_iter, '799cf65af53354d8',
     'FeatureCacheTrainLoop.run_cached_iter repeats its steps'),
    (Runner.load_or_resume, '64bfedf746e87efb',
     'SafeLoadingRunner.load_or_resume sets _load_from before it'),
    (Runner.load_checkpoint, 'bc247ec99a20e83b',
     'SafeLoadingRunner.load_checkpoint post-processes what it returns'),
    (CheckpointHook._save_checkpoint_with_step, '1478da317e2597a0',
     'capture_checkpoint_pointer relies on where it writes the pointer'),
]


@pytest.mark.parametrize('func,expected,why', PINNED,
                         ids=[p[0].__qualname__ for p in PINNED])
def test_mirrored_mmengine_code_is_unchanged(func, expected, why):
    """The code itself (comments, docstring and layout aside): a change
    means reading it again against the rock_plugin code that mirrors it,
    then updating the fingerprint here."""
    require(_fingerprint(func) == expected, func.__qualname__,
            f'{why}; re-read it, then set its fingerprint in PINNED to '
            f'{_fingerprint(func)!r}')


def test_no_private_mmengine_name_outside_the_internals_module():
    """The private names of the mmengine classes rock_plugin extends appear
    only in mmengine_internals.py (checkpoint_io.py: its own, above)."""
    import mmengine.hooks.checkpoint_hook
    import mmengine.hooks.hook
    import mmengine.runner.loops
    import mmengine.runner.runner
    private = set()
    for module in (mmengine.runner.runner, mmengine.runner.loops,
                   mmengine.hooks.checkpoint_hook, mmengine.hooks.hook):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            name = getattr(node, 'attr', None) or (
                node.name if isinstance(node, ast.FunctionDef) else None)
            if name and name.startswith('_') and not name.startswith('__'):
                private.add(name)
    assert {'_resume', '_train_loop', '_save_checkpoint_with_step'} <= private
    found = []
    for path in sorted(glob.glob(osp.join(REPO, 'rock_plugin', '**', '*.py'),
                                 recursive=True)):
        rel = osp.relpath(path, REPO)
        if rel == INTERNALS:
            continue
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and \
                    (node.module or '').startswith('mmengine'):
                names = [a.name for a in node.names
                         if a.name.startswith('_')]
            elif isinstance(node, (ast.Attribute, ast.FunctionDef)):
                name = getattr(node, 'attr', None) or node.name
                names = [name] if name in private else []
            else:
                names = []
            found += [f'{rel}:{node.lineno} {n}' for n in names]
    assert not found, ('private mmengine names outside '
                       f'{INTERNALS}: {found}')


# -- helpers -------------------------------------------------------------
def _function(func) -> ast.FunctionDef:
    return ast.parse(textwrap.dedent(inspect.getsource(func))).body[0]


def _self_assignments(func):
    return {t.attr for node in ast.walk(_function(func))
            if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Attribute)
            and ast.unparse(t.value) == 'self'}


def _augmented(func):
    return {node.target.attr for node in ast.walk(_function(func))
            if isinstance(node, ast.AugAssign)
            and isinstance(node.target, ast.Attribute)}


def _self_calls(func):
    return {node.func.attr for node in ast.walk(_function(func))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and ast.unparse(node.func.value) == 'self'}


def _fingerprint(func) -> str:
    """A hash of the function's tokens without its docstring and comments:
    the same on every Python version, unlike ``ast.dump``."""
    source = textwrap.dedent(inspect.getsource(func))
    body = _function(func).body
    lines = source.splitlines(keepends=True)
    if ast.get_docstring(_function(func)) is not None:
        del lines[body[0].lineno - 1:body[0].end_lineno]
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
            tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    tokens = [t.string for t in tokenize.generate_tokens(
        io.StringIO(''.join(lines)).readline) if t.type not in skip]
    return hashlib.sha256(' '.join(tokens).encode()).hexdigest()[:16]

