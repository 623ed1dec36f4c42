"""configs/rock_quickstart_dihedral.py as shipped: the frozen quick start at
380 px, its features the mean over the 8 flips and quarter turns, a head
with a hidden layer, trained on features computed once."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from conftest import DEMO_DATA, REPO, load_tool, run_tool

QUICK = osp.join(REPO, 'configs', 'rock_quickstart.py')
DIHEDRAL = osp.join(REPO, 'configs', 'rock_quickstart_dihedral.py')


def test_config_is_the_quickstart_with_invariant_features_and_mlp_head():
    from rock_plugin.engine.runners.feature_cache_keys import \
        DETERMINISTIC_TRANSFORMS
    train_tool = load_tool('train')
    quick = train_tool.build_config(train_tool.parse_args([QUICK]))
    cfg = train_tool.build_config(train_tool.parse_args([DIHEDRAL]))
    assert (cfg.model.type, cfg.model.views) == ('DihedralMeanClassifier', 8)
    assert cfg.model.freeze_backbone is True
    assert cfg.model.backbone == quick.model.backbone
    head = cfg.model.head
    assert (head.type, head.mid_channels, head.dropout_rate,
            head.in_channels) == ('OpenSetMLPClsHead', 512, 0.2, 1960)
    assert head.loss == quick.model.head.loss  # cross-entropy
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline == cfg.val_dataloader.dataset.pipeline
    assert pipeline[1] == dict(type='Resize', scale=(380, 380),
                               backend='pillow', interpolation='bicubic')
    # no randomness: one cached view per image is the exact recipe
    assert {t['type'] for t in pipeline} <= DETERMINISTIC_TRANSFORMS
    assert (cfg.train_cfg.type, cfg.train_cfg.num_views,
            cfg.train_cfg.max_epochs) == ('FeatureCacheTrainLoop', 1, 60)
    assert cfg.param_scheduler.type == 'CosineAnnealingLR'
    assert cfg.param_scheduler.end == 60
    for key in ('default_hooks', 'custom_hooks', 'val_evaluator',
                'data_preprocessor', 'val_cfg'):
        assert cfg[key] == quick[key], key
    assert cfg.train_dataloader.num_workers == \
        quick.train_dataloader.num_workers


@pytest.mark.skipif(not osp.isdir(DEMO_DATA), reason='bundled data missing')
def test_shipped_recipe_trains_and_names_a_turned_slide_alike(tmp_path):
    """Trained by tools/train.py on the bundled data with the shipped loader
    settings (2 epochs; 48 of the 189 training images and 16 of the 44
    validation images, as the features cost 8 backbone passes an image),
    then tools/predict.py gives an image, its quarter turns and its mirror
    image the same scores, and so does its ONNX export (export_onnx.py,
    predict.py --onnx)."""
    work = tmp_path / 'work'
    log = run_tool('tools/train.py', DIHEDRAL, '--work-dir', str(work),
                   '--cfg-options', 'train_cfg.max_epochs=2',
                   'train_dataloader.dataset.indices=48',
                   'val_dataloader.dataset.indices=16').stdout
    assert 'FeatureCacheTrainLoop: 1 view(s) x 48 images cached' in log
    assert '(exact: the pipeline has no random transform)' in log
    assert 'open set: temperature' in log
    assert '; T fitted apart: ' in log  # README, Cross-validation
    # the bank reuses those features: the images pass the backbone once
    assert "open-set features of the train images: FeatureCacheTrainLoop's" \
        ", no backbone pass" in log
    # and the validation images once: the loop takes the hook's features
    assert "validation images cached at the neck output " \
        "(OpenSetCalibrationHook's: no backbone pass)" in log
    import torch
    state = torch.load(work / 'epoch_2.pth', map_location='cpu',
                       weights_only=True)['state_dict']
    assert state['head.bank'].shape == (48, 512)
    assert state['head.hidden.fc.weight'].shape == (512, 1960)
    chert = osp.join(DEMO_DATA, 'Chert')
    image = Image.open(osp.join(chert, sorted(os.listdir(chert))[0]))
    image = image.convert('RGB')
    folder = tmp_path / 'slides'
    folder.mkdir()
    variants = {'a_upright': image,
                'b_turned': image.transpose(Image.Transpose.ROTATE_90),
                'c_half': image.transpose(Image.Transpose.ROTATE_180),
                'd_mirrored': image.transpose(
                    Image.Transpose.FLIP_LEFT_RIGHT)}
    for name, im in variants.items():
        im.save(folder / f'{name}.png')  # lossless: the same pixels
    out = tmp_path / 'preds.json'
    run_tool('tools/predict.py', str(work / 'rock_quickstart_dihedral.py'),
             str(work / 'epoch_2.pth'), str(folder), '--out', str(out))
    preds = json.loads(out.read_text())['predictions']
    assert len(preds) == 4
    scores = [np.array([p['scores'][k] for k in sorted(p['scores'])])
              for p in preds]
    assert len({p['pred_class'] for p in preds}) == 1
    for s in scores[1:]:
        np.testing.assert_allclose(s, scores[0], atol=1e-3)
    # the export averages the same 8 views: ONNX Runtime gives these scores
    onnx = tmp_path / 'model.onnx'
    log = run_tool('tools/export_onnx.py',
                   str(work / 'rock_quickstart_dihedral.py'),
                   str(work / 'epoch_2.pth'), '--out', str(onnx)).stdout
    assert 'input N x 3 x 380 x 380' in log and 'top-1 agreement 100%' in log
    onnx_out = tmp_path / 'onnx.json'
    run_tool('tools/predict.py', '--onnx', str(onnx), str(folder), '--out',
             str(onnx_out))
    onnx_preds = json.loads(onnx_out.read_text())['predictions']
    for p, q in zip(onnx_preds, preds):
        assert p['file'] == q['file']
        np.testing.assert_allclose(
            [p['scores'][k] for k in sorted(p['scores'])],
            [q['scores'][k] for k in sorted(q['scores'])], atol=1e-4)
