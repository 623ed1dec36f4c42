"""The shipped configs and checkpoints with mmpretrain's and mmengine's own
APIs, unchanged: ``ImageClassificationInferencer``, ``get_model``,
``inference_model`` and a plain ``Runner`` test."""
import csv
import os.path as osp

import numpy as np
import pytest
import torch

from conftest import DEMO_DATA, QUICKSTART, REPO

# builds by type name: mmpretrain's registry (conftest.mmpretrain_scope)
pytestmark = pytest.mark.usefixtures('mmpretrain_scope')

ROCK_B4 = osp.join(REPO, 'configs', 'rock_b4.py')


def _images(per_class):
    """The first ``per_class`` bundled images of every class."""
    from rock_plugin.utils.image_files import scan_class_folders
    classes, samples = scan_class_folders(DEMO_DATA)
    return [osp.join(DEMO_DATA, path) for c in range(len(classes))
            for path in [p for p, lbl in samples if lbl == c][:per_class]]


def _stock_vs_rock(config, checkpoint, images, batch_size=16):
    """Scores from the stock inferencer and from RockInferencer."""
    import rock_plugin  # noqa: F401  (registries, as custom_imports would)
    from mmpretrain import ImageClassificationInferencer

    from rock_plugin.apis.inferencer import RockInferencer
    stock = ImageClassificationInferencer(model=config, pretrained=checkpoint,
                                          device='cpu')
    stock_out = stock(images, batch_size=batch_size)
    rock_out = RockInferencer(config, checkpoint,
                              batch_size=batch_size)(images)
    assert [r['file'] for r in rock_out] == images
    return stock_out, rock_out


def test_stock_inferencer_predicts_what_rock_inferencer_does(
        quickstart_model):
    # The reproduction of the issue: the config the run saved, its checkpoint.
    images = _images(per_class=6)
    stock, rock = _stock_vs_rock(quickstart_model['config'],
                                 quickstart_model['checkpoint'], images)
    assert [r['pred_class'] for r in stock] == \
        [r['pred_class'] for r in rock]
    np.testing.assert_allclose([r['pred_scores'] for r in stock],
                               [list(r['scores'].values()) for r in rock],
                               atol=1e-5)
    # a real model, not a constant: several classes predicted
    assert len({r['pred_label'] for r in stock}) >= 5


def test_get_model_and_inference_model(quickstart_model):
    import rock_plugin  # noqa: F401
    from mmpretrain import get_model, inference_model

    from rock_plugin.apis.inferencer import RockInferencer
    images = _images(per_class=1)
    model = get_model(QUICKSTART, pretrained=quickstart_model['checkpoint'],
                      device='cpu')
    assert len(model._dataset_meta['classes']) == 11
    expected = RockInferencer(QUICKSTART,
                              quickstart_model['checkpoint'])(images)
    for image, want in zip(images, expected):
        got = inference_model(model, image)
        assert got['pred_class'] == want['pred_class']
        assert got['pred_score'] == pytest.approx(want['pred_score'],
                                                  abs=1e-5)


def test_plain_runner_test_reproduces_the_training_validation(
        quickstart_model, tmp_path, monkeypatch):
    from mmengine.config import Config
    from mmengine.runner import Runner
    monkeypatch.chdir(REPO)  # the config's data_root is relative to it
    cfg = Config.fromfile(QUICKSTART)
    cfg.work_dir = str(tmp_path)
    cfg.load_from = quickstart_model['checkpoint']
    runner = Runner.from_cfg(cfg)  # mmengine's Runner, not RockRunner
    assert type(runner) is Runner
    metrics = runner.test()
    with open(osp.join(quickstart_model['work_dir'], 'history.csv'),
              newline='') as f:
        last = list(csv.DictReader(f))[-1]
    assert metrics['accuracy/top1'] == pytest.approx(
        float(last['accuracy/top1']), abs=1e-3)


def test_rock_b4_config_with_the_stock_apis(tmp_path):
    """configs/rock_b4.py: no weights to download here, so a B4 built from
    it, with BN statistics measured on a few bundled images (a random B4
    gives every image the same scores, which could hide a wrong pipeline)."""
    import rock_plugin  # noqa: F401
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmpretrain import get_model, inference_model
    from mmpretrain.registry import TRANSFORMS
    from torch.nn.modules.batchnorm import _BatchNorm
    images = _images(per_class=1)[:4]
    model = get_model(ROCK_B4)
    pipeline = Compose([TRANSFORMS.build(t) for t in
                        model._config.test_dataloader.dataset.pipeline])
    samples = [pipeline(dict(img_path=p)) for p in images]
    for module in model.backbone.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.backbone.train()
    with torch.no_grad():
        model.backbone(model.data_preprocessor(pseudo_collate(samples),
                                               False)['inputs'])
    classes = tuple(f'rock{i}' for i in range(11))
    checkpoint = str(tmp_path / 'b4.pth')
    torch.save(dict(meta=dict(dataset_meta=dict(classes=classes)),
                    state_dict=model.state_dict()), checkpoint)

    stock, rock = _stock_vs_rock(ROCK_B4, checkpoint, images, batch_size=4)
    assert [r['pred_class'] for r in stock] == \
        [r['pred_class'] for r in rock]
    stock_scores = np.array([r['pred_scores'] for r in stock])
    np.testing.assert_allclose(
        stock_scores, [list(r['scores'].values()) for r in rock], atol=1e-5)
    assert np.ptp(stock_scores, axis=0).max() > 1e-3  # images differ
    loaded = get_model(ROCK_B4, pretrained=checkpoint)
    assert inference_model(loaded, images[0])['pred_class'] == \
        rock[0]['pred_class']


def test_loader_takes_decoded_pixels_like_a_file(tmp_path):
    """What the stock inferencer hands LoadRockImage (an ``mmcv.imread``
    array, no path) gives the pixels the file gives; gray and BGRA arrays
    become 3-channel BGR, and ``pre_resize`` still applies."""
    import mmcv

    import rock_plugin  # noqa: F401
    from conftest import make_image
    from rock_plugin.datasets import LoadRockImage
    path = make_image(str(tmp_path / 'a.png'), size=(60, 40))
    loader = LoadRockImage()
    from_file = loader(dict(img_path=path))['img']
    np.testing.assert_array_equal(loader(dict(img=mmcv.imread(path)))['img'],
                                  from_file)
    gray = from_file[..., 0]
    assert (loader(dict(img=gray))['img'] == gray[..., None]).all()
    bgra = np.dstack([from_file, np.full(gray.shape, 7, np.uint8)])
    np.testing.assert_array_equal(loader(dict(img=bgra))['img'], from_file)
    small = LoadRockImage(pre_resize=20)(dict(img=from_file))
    assert small['img'].shape == (20, 30, 3) and small['img_shape'] == (20, 30)
