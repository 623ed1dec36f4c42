"""configs/rock_quickstart.py: the Lite2 recipe on the bundled demo data."""
import csv
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import REPO, load_tool, run_tool

QUICK = osp.join(REPO, 'configs', 'rock_quickstart.py')
DEMO = osp.join(REPO, 'demo', 'rock_thin_sections')


def test_quickstart_is_the_rock_b4_recipe_on_lite2():
    train_tool = load_tool('train')
    cfg = train_tool.build_config(train_tool.parse_args([QUICK, '--seed',
                                                         '0']))
    m = cfg.model
    assert m.type == 'RockImageClassifier' and m.freeze_backbone
    assert m.backbone.type == 'EfficientNetLite'
    assert m.backbone.weights == 'package'
    assert m.backbone.model_name == 'tf_efficientnet_lite2'
    assert m.backbone.out_indices == (4, 5, 6)
    assert m.neck.type == 'ConcatGlobalAveragePooling'
    assert (m.head.num_classes, m.head.in_channels) == (11, 1960)
    assert cfg.data_preprocessor.mean == [127.0] * 3
    assert cfg.train_dataloader.dataset.data_root == 'demo/rock_thin_sections'
    assert cfg.train_dataloader.dataset.pipeline[1].scale == 260
    assert cfg.val_dataloader.dataset.pipeline[1].crop_size == 260
    # larger images shrink to the bundled 256 px short side first
    for pipeline in (cfg.train_dataloader.dataset.pipeline,
                     cfg.val_dataloader.dataset.pipeline, cfg.tta_pipeline):
        assert pipeline[0] == dict(type='LoadImageWithPreResize',
                                   pre_resize=256)
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.param_scheduler.type == 'MultiStepLR'
    assert cfg.param_scheduler.end == cfg.train_cfg.max_epochs
    hooks = {h.type for h in cfg.custom_hooks}
    assert {'HistoryHook', 'PlainCheckpointStateHook',
            'ConfiguredScheduleEndHook'} <= hooks
    assert cfg.val_evaluator.type == 'ClassReportMetric'
    # The recipe whose fold figures the README reports.
    assert cfg.train_cfg.max_epochs == 30
    assert cfg.param_scheduler.milestones == [20, 26]
    assert cfg.train_dataloader.batch_size == 16
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.0625)
    # Shipped loaders: workers on, training workers persistent.
    assert cfg.train_dataloader.num_workers >= 1
    assert cfg.train_dataloader.persistent_workers
    assert cfg.val_dataloader.num_workers >= 1
    ckpt = cfg.default_hooks.checkpoint
    assert (ckpt.type, ckpt.save_best, ckpt.rule) == (
        'AtomicCheckpointHook', 'accuracy/top1', 'greater')


def test_quickstart_as_shipped_learns_and_writes_best_and_last(tmp_path):
    """The README command as shipped (workers on and persistent), 2 epochs."""
    if not osp.isdir(DEMO):
        pytest.skip('bundled demo data missing')
    work = str(tmp_path / 'quick')
    proc = run_tool('tools/train.py', QUICK, '--work-dir', work,
                    '--cfg-options', 'train_cfg.max_epochs=2', fresh=True)
    log = proc.stdout + proc.stderr
    assert 'Per-class results' in log and 'SparryOoliticLimestone' in log
    dumped = Config.fromfile(osp.join(work, 'rock_quickstart.py'))
    assert dumped.train_dataloader.num_workers == 2
    assert dumped.train_dataloader.persistent_workers
    with open(osp.join(work, 'history.csv'), newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    # pretrained ImageNet features: far above chance (9 %) after 2 epochs
    top1 = [float(r['accuracy/top1']) for r in rows]
    assert top1[-1] >= 50
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    last = torch.load(osp.join(work, 'last.pth'), weights_only=True)
    assert last['meta']['epoch'] == 2 and 'optimizer' in last
    assert len(last['meta']['dataset_meta']['classes']) == 11
    best = torch.load(osp.join(work, 'best.pth'), weights_only=True)
    # ties go to the later epoch
    assert best['meta']['epoch'] == max(
        i + 1 for i, t in enumerate(top1) if t == max(top1))
