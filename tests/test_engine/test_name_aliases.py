"""The renamed classes keep their earlier names: configs saved by earlier
runs, their checkpoints and ONNX exports still work, while the shipped
configs and docs use the new names (docs/changelog.md lists them)."""
import glob
import json
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from conftest import REPO, TINY_CONFIG, run_tool

# new name -> earlier name (registry and Python alias)
RENAMED = {
    'SafeLoadingRunner': 'RockRunner',
    'AtomicCheckpointHook': 'RockCheckpointHook',
    'CpuCompatibleDistributedDataParallel': 'RockDistributedDataParallel',
    'LoadImageWithPreResize': 'LoadRockImage',
}
# SafeCheckpointHook did the work of these two; it stays as one class.
SPLIT = ('PlainCheckpointStateHook', 'ConfiguredScheduleEndHook')
OLD_NAMES = (*RENAMED.values(), 'SafeCheckpointHook')


def _types(node):
    """Every ``type`` (and ``runner_type``) value in a config dict."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('type', 'runner_type') and isinstance(value, str):
                yield value
            yield from _types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _types(value)


def _rename_types(node, mapping):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('type', 'runner_type') and value in mapping:
                node[key] = mapping[value]
            else:
                _rename_types(value, mapping)
    elif isinstance(node, list):
        for value in node:
            _rename_types(value, mapping)


def old_names_config(folder) -> str:
    """The tiny test config as an earlier release saved it in a work dir:
    resolved (no ``_base_``) and naming every class by its earlier name."""
    cfg = Config.fromfile(TINY_CONFIG).to_dict()
    _rename_types(cfg, {new: old for new, old in RENAMED.items()})
    hooks = [h for h in cfg['custom_hooks'] if h['type'] not in SPLIT]
    at = [h['type'] for h in cfg['custom_hooks']].index(SPLIT[0])
    hooks.insert(at, dict(type='SafeCheckpointHook'))
    cfg['custom_hooks'] = hooks
    path = osp.join(str(folder), 'old_names_config.py')
    Config(cfg).dump(path)
    return path


def test_old_and_new_names_are_the_same_classes():
    from mmengine.registry import MODEL_WRAPPERS, RUNNERS
    from mmpretrain.registry import HOOKS, TRANSFORMS

    import rock_plugin.datasets as datasets
    import rock_plugin.engine as engine
    import rock_plugin.engine.hooks as hooks
    registries = dict(SafeLoadingRunner=RUNNERS, AtomicCheckpointHook=HOOKS,
                      CpuCompatibleDistributedDataParallel=MODEL_WRAPPERS,
                      LoadImageWithPreResize=TRANSFORMS)
    for new, old in RENAMED.items():
        cls = registries[new].get(new)
        assert cls.__name__ == new and registries[new].get(old) is cls
        module = {'LoadImageWithPreResize': datasets,
                  'AtomicCheckpointHook': hooks}.get(new, engine)
        assert getattr(module, old) is getattr(module, new) is cls
    for name in (*SPLIT, 'SafeCheckpointHook'):
        assert HOOKS.get(name).__name__ == name


def test_safe_checkpoint_hook_does_both_jobs_of_the_split_hooks():
    from mmengine.logging import HistoryBuffer

    from rock_plugin.engine.hooks import (ConfiguredScheduleEndHook,
                                          PlainCheckpointStateHook,
                                          SafeCheckpointHook)

    def round_trip(save_hooks, load_hooks):
        ckpt = dict(message_hub=dict(log_scalars=dict(
            loss=HistoryBuffer([1.0, 2.0], [1, 1], 10))),
            param_schedulers=[dict(end=1, milestones={1: 1})])
        for hook in save_hooks:
            hook.before_save_checkpoint(None, ckpt)
        plain = ckpt['message_hub']['log_scalars']['loss']
        assert isinstance(plain, dict)  # what weights_only=True reads
        runner = SimpleNamespace(_resume=True,
                                 param_schedulers=[SimpleNamespace(end=2)])
        for hook in load_hooks:
            hook.after_load_checkpoint(runner, ckpt)
        buffer = ckpt['message_hub']['log_scalars']['loss']
        return buffer.mean(), ckpt['param_schedulers'][0]['end']

    old = SafeCheckpointHook()
    split = [PlainCheckpointStateHook(), ConfiguredScheduleEndHook()]
    assert round_trip([old], [old]) == round_trip(split[:1], split) \
        == (1.5, 2)
    # the split hooks each do one job only
    ckpt = dict(param_schedulers=[dict(end=1)])
    PlainCheckpointStateHook().after_load_checkpoint(
        SimpleNamespace(_resume=True,
                        param_schedulers=[SimpleNamespace(end=2)]), ckpt)
    assert ckpt['param_schedulers'][0]['end'] == 1


@pytest.mark.parametrize('path', sorted(glob.glob(
    osp.join(REPO, 'configs', '*.py'))), ids=osp.basename)
def test_shipped_configs_use_the_new_names(path):
    cfg = Config.fromfile(path)
    types = set(_types(cfg.to_dict()))
    assert not types & set(OLD_NAMES), osp.basename(path)
    assert cfg.runner_type == 'SafeLoadingRunner'
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.model_wrapper_cfg.type == \
        'CpuCompatibleDistributedDataParallel'
    hooks = [h.type for h in cfg.custom_hooks]
    assert hooks.index(SPLIT[0]) + 1 == hooks.index(SPLIT[1])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.pipeline[0].type == \
            'LoadImageWithPreResize'


def test_docs_name_the_old_names_only_in_the_changelog():
    for path in [osp.join(REPO, 'README.md'),
                 *glob.glob(osp.join(REPO, 'docs', '*.md'))]:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        if path.endswith('changelog.md'):
            unreleased = text.split('## Unreleased', 1)[1].split('\n## ')[0]
            assert all(name in unreleased for name in OLD_NAMES)
        else:
            assert not [n for n in OLD_NAMES if n in text], path


def test_saved_config_with_the_old_names_trains_resumes_and_loads(
        tiny_data, tmp_path):
    old = old_names_config(tmp_path)
    with open(old, encoding='utf-8') as f:
        text = f.read()
    assert all(f"'{name}'" in text for name in OLD_NAMES)
    assert not [name for name in (*RENAMED, *SPLIT) if name in text]
    work = str(tmp_path / 'old_run')
    args = ('tools/train.py', old, '--device', 'cpu', '--seed', '1',
            '--data-root', tiny_data, '--work-dir', work)
    run_tool(*args, '--cfg-options', 'train_cfg.max_epochs=1')
    # RockCheckpointHook is the atomic hook: stable best.pth / last.pth
    for name in ('best.pth', 'last.pth', 'epoch_1.pth', 'history.csv'):
        assert osp.isfile(osp.join(work, name)), name
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work, 'epoch_1.pth')
    # resumed through RockRunner (safe loaders: the checkpoint holds plain
    # types only) and SafeCheckpointHook's configured schedule end
    proc = run_tool(*args, '--resume', '--cfg-options',
                    'train_cfg.max_epochs=2')
    out = proc.stdout + proc.stderr
    assert 'resumed epoch: 1' in out
    assert 'resume: MultiStepLR end 1 -> 2 (from the config)' in out
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    # the earlier run's checkpoint loads under the new names
    proc = run_tool('tools/test.py', TINY_CONFIG,
                    osp.join(work, 'last.pth'), '--device', 'cpu',
                    '--data-root', tiny_data, '--work-dir',
                    str(tmp_path / 'test'))
    assert 'accuracy/top1' in proc.stdout + proc.stderr


def test_onnx_export_naming_the_old_loader_still_predicts(quickstart_onnx,
                                                         tmp_path):
    import onnx

    from rock_plugin.apis.inferencer import RockInferencer, list_images
    model = onnx.load(quickstart_onnx)
    files = {}
    for name in ('LoadRockImage', 'LoadImageWithPreResize'):
        props = {p.key: p.value for p in model.metadata_props}
        pipeline = json.loads(props['test_pipeline'])
        pipeline[0]['type'] = name
        for p in model.metadata_props:
            if p.key == 'test_pipeline':
                p.value = json.dumps(pipeline)
        files[name] = str(tmp_path / f'{name}.onnx')
        onnx.save(model, files[name])
    image = list_images(osp.join(REPO, 'demo', 'rock_thin_sections',
                                 'Chert'))[0]
    old, new = (RockInferencer.from_onnx(files[n])(image)[0]
                for n in ('LoadRockImage', 'LoadImageWithPreResize'))
    assert old['pred_class'] == new['pred_class']
    assert old['scores'] == pytest.approx(new['scores'], abs=1e-6)
    out = tmp_path / 'preds.json'
    run_tool('tools/predict.py', '--onnx', files['LoadRockImage'], image,
             '--out', str(out))
    assert old['pred_class'] in out.read_text(encoding='utf-8')
