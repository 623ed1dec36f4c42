"""configs/rock_quickstart.py: the Lite0 recipe on the bundled demo data."""
import csv
import os.path as osp

import pytest
import torch

from conftest import REPO, load_tool, run_tool

QUICK = osp.join(REPO, 'configs', 'rock_quickstart.py')
DEMO = osp.join(REPO, 'demo', 'rock_thin_sections')


def test_quickstart_is_the_rock_b4_recipe_on_lite0():
    train_tool = load_tool('train')
    cfg = train_tool.build_config(train_tool.parse_args([QUICK, '--seed',
                                                         '0']))
    m = cfg.model
    assert m.type == 'RockImageClassifier' and m.freeze_backbone
    assert m.backbone.type == 'EfficientNetLite'
    assert m.backbone.weights == 'package'
    assert (m.head.num_classes, m.head.in_channels) == (11, 1280)
    assert cfg.data_preprocessor.mean == [127.0] * 3
    assert cfg.train_dataloader.dataset.data_root == 'demo/rock_thin_sections'
    assert cfg.train_dataloader.dataset.pipeline[1].scale == 224
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.param_scheduler.type == 'MultiStepLR'
    assert cfg.param_scheduler.end == cfg.train_cfg.max_epochs
    hooks = {h.type for h in cfg.custom_hooks}
    assert {'HistoryHook', 'SafeCheckpointHook'} <= hooks
    assert cfg.val_evaluator.type == 'RockMetric'


def test_quickstart_one_epoch_on_demo_learns(tmp_path):
    if not osp.isdir(DEMO):
        pytest.skip('bundled demo data missing')
    work = str(tmp_path / 'quick')
    proc = run_tool('tools/train.py', QUICK, '--work-dir', work, '--device',
                    'cpu', '--cfg-options', 'train_cfg.max_epochs=2')
    log = proc.stdout + proc.stderr
    assert 'Per-class results' in log and 'SparryOoliticLimestone' in log
    with open(osp.join(work, 'history.csv'), newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    # pretrained ImageNet features: far above chance (9 %) after 2 epochs
    assert float(rows[-1]['accuracy/top1']) >= 50
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), weights_only=True)
    assert len(ckpt['meta']['dataset_meta']['classes']) == 11
