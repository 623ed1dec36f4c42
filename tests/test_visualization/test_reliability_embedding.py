"""The reliability diagram and the feature map draw what they are given
(generated numbers; drawing only)."""
import numpy as np
import pytest

from conftest import file_magic

PNG = b'\x89PNG\r\n\x1a\n'


def _pixels(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert('RGB')).astype(int)


def _share(img, rgb, tol=40):
    return float((np.abs(img - np.array(rgb)).sum(axis=2) < tol).mean())


def test_reliability_diagram_draws_each_series(tmp_path):
    from rock_plugin.evaluation.functional.calibration import (
        calibration_bins, softmax)
    from rock_plugin.visualization.reliability import plot_reliability
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (200, 4))
    labels = rng.integers(0, 4, 200)
    before = calibration_bins(softmax(logits), labels)
    after = calibration_bins(softmax(logits, 4.0), labels)
    one = plot_reliability([dict(before, label='T = 1')],
                           str(tmp_path / 'one.png'))
    two = plot_reliability([dict(before, label='before (T = 1)'),
                            dict(after, label='after (T = 4)')],
                           str(tmp_path / 'two.png'), title='Test $x$')
    assert file_magic(one, 8) == file_magic(two, 8) == PNG
    # bars at alpha 0.75 on white: orange for the first series, blue for
    # the second, which only two has
    orange, blue = (255, 159, 74), (87, 153, 199)
    img_one, img_two = _pixels(one), _pixels(two)
    assert _share(img_one, orange) > 0.01 and _share(img_two, orange) > 0.01
    assert _share(img_two, blue) > 0.01 and _share(img_one, blue) < 0.001


def test_reliability_diagram_of_a_single_image(tmp_path):
    from rock_plugin.evaluation.functional.calibration import calibration_bins
    from rock_plugin.visualization.reliability import plot_reliability
    bins = calibration_bins(np.array([[1.0, 0.0]]), np.array([1]))
    assert bins['ece'] == pytest.approx(1.0)
    out = plot_reliability([dict(bins, label='one')], str(tmp_path / 'r.png'))
    assert file_magic(out, 8) == PNG


def test_embedding_marks_unknown_images_with_black_crosses(tmp_path):
    from rock_plugin.visualization.embedding import plot_embedding
    rng = np.random.default_rng(0)
    points = rng.normal(0, 1, (30, 2))
    labels = np.repeat(np.arange(3), 10)
    names = ['Chert', '$pecial', 'Bauxite\x1b']  # drawn literally
    plain = plot_embedding(points, labels, names, str(tmp_path / 'a.png'))
    marked = plot_embedding(points, labels, names, str(tmp_path / 'b.png'),
                            unknown_points=rng.normal(3, 1, (60, 2)))
    assert file_magic(plain, 8) == file_magic(marked, 8) == PNG
    black = (0, 0, 0)
    assert _share(_pixels(marked), black, 60) > \
        _share(_pixels(plain), black, 60) + 0.001
