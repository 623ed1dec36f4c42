"""Grayscale, palette, 16-bit and alpha images: the loader gives the 3-channel
pixels PIL's conversion gives, and prediction reads each kind exactly as its
RGB copy. (Training on a folder of them, end to end: tests/test_tools/
test_train_tool.py, test_quick_start_classes_follow_the_data_of_every_...)"""
import numpy as np
import pytest
from PIL import Image

import rock_plugin  # noqa: F401
from conftest import make_image
from rock_plugin.datasets.transforms import LoadImageWithPreResize, read_rgb

# (file name, PIL mode, format); P with a transparent index too.
KINDS = [('gray.png', 'L', 'PNG'), ('gray.jpg', 'L', 'JPEG'),
         ('palette.png', 'P', 'PNG'), ('palette_t.png', 'P', 'PNG'),
         ('alpha.png', 'RGBA', 'PNG'), ('gray_alpha.png', 'LA', 'PNG'),
         ('gray16.png', 'I;16', 'PNG')]


@pytest.fixture(scope='module')
def odd_images(tmp_path_factory):
    root = tmp_path_factory.mktemp('modes')
    paths = {}
    for i, (name, mode, fmt) in enumerate(KINDS):
        path = make_image(str(root / name), seed=i, size=(72, 56),
                          mode=mode, fmt=fmt)
        if name == 'palette_t.png':
            with Image.open(path) as img:
                img.load()
            img.save(path, transparency=0)
        paths[name] = path
    return paths


@pytest.mark.parametrize('name', [k[0] for k in KINDS])
def test_loader_gives_the_3_channel_pixels(odd_images, name):
    path = odd_images[name]
    with Image.open(path) as img:
        mode = img.mode
        if mode == 'I;16':  # 16-bit: the full range maps to 0-255
            expected = np.round(np.asarray(img, np.float64) / 257)
            expected = np.repeat(expected[..., None], 3, axis=2)
        else:
            expected = np.asarray(img.convert('RGB'), np.float64)
    rgb = read_rgb(path)
    assert rgb.shape == (56, 72, 3) and rgb.dtype == np.uint8
    # JPEG gray goes through OpenCV (as mmcv), 16-bit through a truncation
    tol = 1 if name in ('gray.jpg', 'gray16.png') else 0
    assert np.abs(rgb - expected).max() <= tol, mode
    bgr = LoadImageWithPreResize()(dict(img_path=path))['img']
    assert np.array_equal(bgr, rgb[..., ::-1])


def test_predict_reads_each_kind_as_its_rgb_copy(odd_images,
                                                 quickstart_model,
                                                 tmp_path):
    """3-channel inputs reach the model, and the scores of each kind equal
    those of an RGB PNG of the same pixels."""
    from rock_plugin.apis.inferencer import RockInferencer
    inferencer = RockInferencer(quickstart_model['config'],
                                quickstart_model['checkpoint'])
    odd = [odd_images[k[0]] for k in KINDS]
    twins = []
    for path in odd:
        twin = str(tmp_path / (path.split('/')[-1] + '.rgb.png'))
        Image.fromarray(read_rgb(path)).save(twin)
        twins.append(twin)
    for path in odd:
        inputs = inferencer.load(path)[1]['inputs']
        assert tuple(inputs.shape) == (3, 260, 260), path
    got, ref = inferencer(odd), inferencer(twins)
    for g, r in zip(got, ref):
        scores = np.array(list(g['scores'].values()))
        assert np.isfinite(scores).all() and abs(scores.sum() - 1) < 1e-4
        assert g['pred_class'] == r['pred_class']
        assert np.allclose(scores, list(r['scores'].values()), atol=1e-5)
    # not one constant answer: the kinds are different images
    assert len({tuple(np.round(list(g['scores'].values()), 6))
                for g in got}) == len(odd)
