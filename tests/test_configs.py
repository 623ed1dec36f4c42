"""configs/rock_b4.py builds exactly the original recipe of SPEC.md."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import rock_plugin  # noqa: F401
from conftest import REPO, load_tool

B4 = osp.join(REPO, 'configs', 'rock_b4.py')
RECIPES = ('rock_b4.py', 'rock_quickstart.py', 'rock_b4_featcache.py')


def _cfg(*extra):
    train_tool = load_tool('train')
    return train_tool.build_config(
        train_tool.parse_args([B4, '--seed', '0', *extra]))


def test_rock_b4_values_match_spec():
    cfg = _cfg()
    m = cfg.model
    assert m.type == 'RockImageClassifier' and m.freeze_backbone is True
    assert (m.backbone.type, m.backbone.arch) == ('EfficientNet', 'b4')
    assert m.backbone.init_cfg.checkpoint.endswith(
        'efficientnet-b4_3rdparty_8xb32_in1k_20220119-81fd4077.pth')
    assert m.backbone.init_cfg.prefix == 'backbone'
    assert m.neck.type == 'GlobalAveragePooling'
    # mmpretrain's LinearClsHead plus buffers for calibration/novelty
    assert (m.head.type, m.head.num_classes, m.head.in_channels) == (
        'OpenSetLinearClsHead', 11, 1792)
    assert m.head.loss == dict(type='CrossEntropyLoss', loss_weight=1.0)
    assert tuple(m.head.topk) == (1, 5)
    dp = cfg.data_preprocessor
    assert dp.mean == [123.675, 116.28, 103.53]
    assert dp.std == [58.395, 57.12, 57.375] and dp.to_rgb is True
    assert dp.num_classes == 11
    train, val = cfg.train_dataloader, cfg.val_dataloader
    assert train.batch_size == 4 and train.num_workers == 4
    assert train.dataset.type == 'RockDataset'
    assert 'split' not in train.dataset  # the ImageNet keys were deleted
    crop = train.dataset.pipeline[1]
    assert crop == dict(type='EfficientNetRandomCrop', scale=380,
                        interpolation='bicubic')
    assert train.dataset.pipeline[2] == dict(type='RandomFlip', prob=0.5,
                                             direction='horizontal')
    # validation uses the validation pipeline and never drops samples
    assert val.dataset.pipeline[1] == dict(
        type='EfficientNetCenterCrop', crop_size=380, interpolation='bicubic')
    assert val.drop_last is False and val.sampler.shuffle is False
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'SGD' and opt.lr == pytest.approx(0.1 * 4 / 256)
    assert (opt.momentum, opt.weight_decay) == (0.9, 1e-4)
    sched = cfg.param_scheduler
    assert (sched.type, sched.milestones, sched.gamma) == (
        'MultiStepLR', [30, 60, 90], 0.1)
    assert sched.end == 100 == cfg.train_cfg.max_epochs  # explicit end
    ckpt = cfg.default_hooks.checkpoint
    assert (ckpt.save_best, ckpt.rule) == ('accuracy/top1', 'greater')
    assert cfg.val_evaluator.type == 'ClassReportMetric'
    assert tuple(cfg.val_evaluator.topk) == (1, 5)
    hooks = [h.type for h in cfg.custom_hooks]
    assert {'HistoryHook', 'PlainCheckpointStateHook',
            'ConfiguredScheduleEndHook', 'RngStateHook'} <= set(hooks)


def test_schedule_end_follows_max_epochs_override():
    cfg = _cfg('--cfg-options', 'train_cfg.max_epochs=150')
    assert cfg.param_scheduler.end == 150


def test_split_validation_uses_val_pipeline_and_seed():
    cfg = _cfg('--split-validation', '--ratio', '0.25', '--fold', '1')
    tr, va = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
    assert (tr.split, va.split) == ('train', 'val')
    assert tr.ann_file == va.ann_file == 'train.txt'
    assert tr.split_seed == va.split_seed == 0 and va.fold == 1
    assert va.pipeline[1].type == 'EfficientNetCenterCrop'


def test_built_model_is_frozen_and_loads_local_pretrained(tmp_path):
    """The exact B4 model; a local checkpoint path via --cfg-options."""
    from mmpretrain.models import EfficientNet
    from mmpretrain.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    ref = EfficientNet(arch='b4')
    path = tmp_path / 'b4.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in ref.state_dict().items()}}, path)
    cfg = _cfg('--cfg-options', f'model.backbone.init_cfg.checkpoint={path}')
    init_default_scope('mmpretrain')
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    for key, value in ref.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert not model.backbone.training  # BN statistics frozen
    assert model.head.training
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=cfg.optim_wrapper.constructor,
        optim_wrapper_cfg=dict(optimizer=cfg.optim_wrapper.optimizer)))
    params = ctor(model).optimizer.param_groups[0]['params']
    assert {id(p) for p in params} == {id(p) for p in model.head.parameters()}
    out = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert out.shape == (1, 11)


@pytest.mark.parametrize('name', RECIPES)
def test_recipes_are_short_compositions_of_base_files(name, tmp_path):
    """Each recipe is <= 60 lines on configs/_base_/ and runs as dumped."""
    path = osp.join(REPO, 'configs', name)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    assert len(text.splitlines()) <= 60, name
    assert '_base_ = [' in text
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'RockImageClassifier'
    assert cfg.train_dataloader.dataset.type == 'RockDataset'
    # the hooks are listed once, in _base_/default_runtime.py
    assert [h.type for h in cfg.custom_hooks] == [
        'HistoryHook', 'HistoryFigureHook', 'ResumeValidationHook',
        'RngStateHook', 'NanGuardHook', 'PlainCheckpointStateHook',
        'ConfiguredScheduleEndHook', 'AutoClassWeightHook',
        'OpenSetCalibrationHook', 'RichProgressBarHook',
        'TrainingPreviewHook']
    # The config as run (mmengine dumps the merged config into the work
    # dir) stands alone: it loads away from configs/_base_ unchanged.
    dumped = tmp_path / name
    cfg.dump(str(dumped))
    assert '_base_' not in dumped.read_text(encoding='utf-8')
    assert Config.fromfile(str(dumped)).to_dict() == cfg.to_dict()


@pytest.mark.parametrize('path', sorted(glob.glob(
    osp.join(REPO, 'configs', '_base_', '**', '*.py'), recursive=True)))
def test_base_files_load_alone(path):
    """Every base file is a valid config of its own (no duplicate keys)."""
    assert Config.fromfile(path).to_dict()
