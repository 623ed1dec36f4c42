"""RockInferencer: names, order, batching and the model's test-time output.
(:func:`conftest.tiny_model`: the trained tiny model this file,
``test_predict_tool.py`` and ``test_export_onnx.py`` share.)
"""
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from conftest import TINY_CLASSES, TINY_CONFIG, tiny_model


@pytest.fixture(scope='module')
def model(tmp_path_factory, tiny_data):
    return tiny_model(tmp_path_factory, tiny_data)


@pytest.fixture(scope='module')
def inferencer(model):
    from rock_plugin.apis.inferencer import RockInferencer
    return RockInferencer(TINY_CONFIG, model['calibrated'], batch_size=5,
                          topk=2)


@pytest.fixture(scope='module')
def images(tiny_data):
    from rock_plugin.apis.inferencer import list_images
    return list_images(tiny_data)


def _scores(results):
    return np.array([list(r['scores'].values()) for r in results])


def test_trained_checkpoint_names_and_sorted_topk(model, images):
    from rock_plugin.apis.inferencer import RockInferencer
    inferencer = RockInferencer(TINY_CONFIG, model['trained'], topk=5)
    assert inferencer.classes == list(TINY_CLASSES)  # from checkpoint meta
    result = inferencer(images[0])[0]
    assert set(result) == {'file', 'pred_label', 'pred_class', 'pred_score',
                           'topk', 'scores', 'answer', 'novelty', 'unknown',
                           'neighbors'}
    assert result['answer'] in (result['pred_class'],
                                'unknown (unlike every trained class)')
    assert len(result['neighbors']) == 3
    assert result['file'] == images[0]
    names = [c for c, _ in result['topk']]
    scores = [s for _, s in result['topk']]
    assert sorted(names) == sorted(TINY_CLASSES)  # topk 5 capped at 3
    assert scores == sorted(scores, reverse=True)
    assert result['pred_class'] == names[0] == \
        TINY_CLASSES[result['pred_label']]
    assert result['pred_score'] == scores[0]
    assert list(result['scores']) == list(TINY_CLASSES)
    assert sum(result['scores'].values()) == pytest.approx(1, abs=1e-5)


def test_batch_equals_one_by_one_and_keeps_order(inferencer, images):
    # Equal up to float rounding: batch size changes the kernels' summation
    # order (the frozen backbone's fused fast path gives ~1e-6).
    # T = 1 here: the tiny model's fitted temperature flattens its scores
    # (then the check that it tells images apart would say little).
    head = inferencer.model.head
    fitted = head.temperature.clone()
    head.temperature.fill_(1.0)
    try:
        _batch_equals_one_by_one(inferencer, images)
    finally:
        head.temperature.copy_(fitted)


def _batch_equals_one_by_one(inferencer, images):
    batched = inferencer(images)  # batches of 5, last one of 4
    assert [r['file'] for r in batched] == images
    single = [inferencer(path)[0] for path in images]
    np.testing.assert_allclose(_scores(batched), _scores(single), atol=1e-5)
    assert [r['pred_class'] for r in batched] == \
        [r['pred_class'] for r in single]
    # the calibrated model really tells images apart (else this is vacuous)
    assert np.ptp(_scores(batched), axis=0).max() > 1e-2
    for r in batched:
        assert len(r['topk']) == 2
        assert r['topk'][0][1] >= r['topk'][1][1]


def test_predictions_match_the_test_time_output(model, tiny_data, inferencer):
    """Same scores as mmpretrain's own model loading + the config's test
    dataloader (what tools/test.py and validation compute)."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from mmpretrain.apis import get_model
    from mmpretrain.registry import DATASETS

    cfg = Config.fromfile(TINY_CONFIG)
    reference = get_model(cfg, pretrained=model['calibrated'])
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.update(data_root=tiny_data, split=None)  # every image
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dataset_cfg)
    samples = [dataset[i] for i in range(len(dataset))]
    with torch.no_grad():
        preds = reference.test_step(pseudo_collate(samples))
    expected = {p.img_path: p.pred_score.numpy() for p in preds}
    results = inferencer(sorted(expected))
    assert len(results) == len(expected) == 24
    for r in results:
        np.testing.assert_allclose(list(r['scores'].values()),
                                   expected[r['file']], atol=1e-5)


def test_folder_listing_is_recursive_sorted_and_filtered(tmp_path, images,
                                                         inferencer):
    from rock_plugin.apis.inferencer import list_images
    root = tmp_path / 'mixed'
    layout = ['b/2.jpg', 'a/z.PNG', 'a/sub/1.jpeg', '0.bmp', 'c/x.tif']
    for rel in layout:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(images[0], root / rel)  # any bytes; listing only
    (root / 'notes.txt').write_text('not an image')
    (root / '.hidden.jpg').write_bytes(b'')
    (root / '.cache').mkdir()
    (root / '.cache' / 'thumb.jpg').write_bytes(b'')
    listed = [osp.relpath(p, root) for p in list_images(str(root))]
    assert listed == ['0.bmp', 'a/sub/1.jpeg', 'a/z.PNG', 'b/2.jpg',
                      'c/x.tif']
    results = inferencer(list_images(str(root)))
    assert [osp.relpath(r['file'], root) for r in results] == listed


def test_bgr_array_equals_file(inferencer, images, tmp_path):
    import cv2
    png = str(tmp_path / 'lossless.png')  # PNG: identical pixels both ways
    bgr = cv2.imread(images[3])
    cv2.imwrite(png, bgr)
    from_file = inferencer(png)[0]
    from_array = inferencer(bgr)[0]
    named = inferencer(('frame-7', bgr))[0]
    assert from_array['file'] == 'array[0]' and named['file'] == 'frame-7'
    np.testing.assert_allclose(_scores([from_array]), _scores([from_file]),
                               atol=1e-5)
    np.testing.assert_allclose(_scores([named]), _scores([from_file]),
                               atol=1e-5)
    # RGB given as BGR changes the answer: the channel order matters
    rgb = inferencer(np.ascontiguousarray(bgr[..., ::-1]))[0]
    assert not np.allclose(_scores([rgb]), _scores([from_file]), atol=1e-4)
    gray = inferencer(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))[0]
    assert len(gray['scores']) == 3


def test_bad_inputs_name_the_file(inferencer, images, tmp_path):
    from rock_plugin.apis.inferencer import ImageNotFoundError, ImageReadError
    missing = str(tmp_path / 'missing.jpg')
    text = tmp_path / 'notes.jpg'
    text.write_text('this is not an image')
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(open(images[0], 'rb').read()[:200])  # truncated
    with pytest.raises(FileNotFoundError) as exc:
        inferencer(missing)
    assert isinstance(exc.value, ImageNotFoundError)
    assert exc.value.path == missing and missing in str(exc.value)
    for bad in (text, corrupt):
        with pytest.raises(ValueError) as exc:
            inferencer(str(bad))
        assert isinstance(exc.value, ImageReadError)
        assert exc.value.path == str(bad) and str(bad) in str(exc.value)
    with pytest.raises(ValueError, match='expected an H x W x 3'):
        inferencer(np.zeros((4, 4, 7), np.uint8))

    reported = []
    results = inferencer([images[0], missing, str(text), images[1],
                          str(corrupt)],
                         on_error=lambda name, e: reported.append(name))
    assert [r['file'] for r in results] == images[:2]
    assert reported == [missing, str(text), str(corrupt)]


def test_wrong_checkpoint_or_config_is_a_clear_error(model, tmp_path):
    from rock_plugin.apis.inferencer import RockInferencer
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        RockInferencer(TINY_CONFIG, str(tmp_path / 'none.pth'))
    with pytest.raises(ValueError, match='does not fit the config'):
        RockInferencer(_other_class_count_config(tmp_path), model['trained'])
    with pytest.raises(ValueError, match='backend'):
        RockInferencer(TINY_CONFIG, model['trained'], backend='tensorrt')


def _other_class_count_config(tmp_path):
    path = tmp_path / 'five_classes.py'
    path.write_text(f"_base_ = [{TINY_CONFIG!r}]\n"
                    "model = dict(head=dict(num_classes=5))\n")
    return str(path)


def test_video_frames_every_n(tmp_path):
    import cv2

    from rock_plugin.apis.inferencer import ImageReadError, video_frames
    path = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             (40, 30))
    for i in range(23):
        writer.write(np.full((30, 40, 3), i * 10, np.uint8))
    writer.release()
    count, frames = video_frames(path, every_n=10)
    frames = list(frames)
    assert count == 23
    assert [name for name, _ in frames] == [f'{path}#frame={i}'
                                            for i in (0, 10, 20)]
    assert frames[1][1].shape == (30, 40, 3)
    assert abs(int(frames[1][1].mean()) - 100) <= 3  # really frame 10
    bad = tmp_path / 'bad.mp4'
    bad.write_text('not a video')
    with pytest.raises(ImageReadError, match='bad.mp4'):
        count, frames = video_frames(str(bad))
        list(frames)
