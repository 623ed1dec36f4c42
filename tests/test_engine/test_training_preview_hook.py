"""TrainingPreviewHook: train_batch0.jpg and val_predictions.jpg."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from conftest import TINY_CONFIG, run_tool

REDRAWN = 'TrainingPreviewHook: val_predictions.jpg redrawn'
# RGB colours of the three generated classes: blue is never dominant, so a
# picture drawn with swapped channels (BGR shown as RGB) shows blue tiles.
COLOURS = dict(alpha=(200, 30, 30), beta=(30, 200, 30), gamma=(200, 200, 30))


@pytest.fixture(scope='module')
def coloured_data(tmp_path_factory):
    from PIL import Image
    root = tmp_path_factory.mktemp('coloured')
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        os.makedirs(root / name)
        for i in range(8):
            img = np.clip(np.array(rgb) + rng.integers(-20, 20, (48, 56, 3)),
                          0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f'{name}_{i}.png')
    return str(root)


def _tiles(grid, rows, cols, pad=4):
    """The image part (192 x 192) of each tile of a hook picture."""
    cell_h = (grid.shape[0] - pad) // rows
    cell_w = (grid.shape[1] - pad) // cols
    return [grid[r * cell_h + pad + 8:r * cell_h + pad + 184,
                 c * cell_w + pad + 8:c * cell_w + pad + 184]
            for r in range(rows) for c in range(cols)]


def test_pictures_in_a_run_with_unchanging_predictions(coloured_data,
                                                       tmp_path):
    work = tmp_path / 'work'
    # lr 0: the predictions never change, so the grid is drawn once.
    proc = run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu',
                    '--data-root', coloured_data, '--work-dir', str(work),
                    '--cfg-options', 'train_cfg.max_epochs=2',
                    'optim_wrapper.optimizer.lr=0')
    log = proc.stdout + proc.stderr
    assert log.count(REDRAWN) == 1
    batch = cv2.imread(str(work / 'train_batch0.jpg'))[..., ::-1]
    # batch 4 -> 2 x 2 tiles of the de-normalised, augmented images
    tiles = _tiles(batch, 2, 2)
    for tile in tiles:
        mean = tile.reshape(-1, 3).mean(0)
        assert mean[2] < max(mean[0], mean[1]) - 60, mean  # never blue
        assert mean.max() > 150  # de-normalised: the real brightness
    val = cv2.imread(str(work / 'val_predictions.jpg'))
    assert val is not None and val.shape[0] > 192 and val.shape[1] > 192


def test_enabled_false_writes_nothing(coloured_data, tmp_path):
    config = tmp_path / 'off.py'
    config.write_text(f"_base_ = ['{TINY_CONFIG}']\n"
                      "custom_hooks = [dict(type='TrainingPreviewHook', "
                      "enabled=False)]\n")
    work = tmp_path / 'work'
    proc = run_tool('tools/train.py', str(config), '--device', 'cpu',
                    '--data-root', coloured_data, '--work-dir', str(work),
                    '--cfg-options', 'train_cfg.max_epochs=1')
    assert REDRAWN not in proc.stdout + proc.stderr
    assert (work / 'epoch_1.pth').is_file()
    assert not (work / 'train_batch0.jpg').exists()
    assert not (work / 'val_predictions.jpg').exists()


def test_quickstart_run_writes_both_pictures(quickstart_model):
    # The shipped recipe: loader workers, CachedFeatureValLoop (pixels
    # dropped after the first validation), real 224 px images.
    work = quickstart_model['work_dir']
    redraws = quickstart_model['log'].count(REDRAWN)
    assert 1 <= redraws <= 2  # 2 epochs, at most one picture each
    for name in ('train_batch0.jpg', 'val_predictions.jpg'):
        img = cv2.imread(osp.join(work, name))
        assert img is not None, name
        # 16 tiles of 192 px in a 4 x 4 grid
        assert img.shape[1] == 4 * (192 + 4) + 4, (name, img.shape)


def test_val_grid_frames_only_mistakes_red():
    from rock_plugin.visualization.previews import draw_val_predictions
    gray = np.full((100, 120, 3), 128, np.uint8)
    grid = draw_val_predictions(
        [gray, gray], [('Chert', 0.9, 'Chert'), ('Bauxite', 0.6, 'Chert')],
        size=192)
    right, wrong = grid[4:8, 4 + 96], grid[4:8, 4 + 196 + 96]
    assert (np.abs(wrong.astype(int) - (220, 30, 30)).max(1) < 10).all()
    assert (right == 128).all()  # the image itself: no frame
