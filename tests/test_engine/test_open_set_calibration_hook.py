"""OpenSetCalibrationHook on the shipped quick start (its loader settings,
bundled data): what it stores, and that predictions agree with it."""
import os.path as osp

import numpy as np
import pytest

from conftest import make_image


@pytest.fixture(scope='module')
def fitted(quickstart_model):
    import torch
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS

    import rock_plugin  # noqa: F401
    from mmengine.registry import DefaultScope
    ckpt = torch.load(quickstart_model['checkpoint'], map_location='cpu',
                      weights_only=True)
    cfg = Config.fromfile(quickstart_model['config'])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        train = DATASETS.build(cfg.train_dataloader.dataset)
        val = DATASETS.build(cfg.val_dataloader.dataset)
    return dict(ckpt=ckpt, train=train, val=val, **quickstart_model)


def test_checkpoint_holds_the_bank_as_plain_data(fitted):
    state, meta = fitted['ckpt']['state_dict'], fitted['ckpt']['meta']
    train = fitted['train']
    assert state['head.bank'].shape == (len(train), 1960)
    assert state['head.bank_labels'].tolist() == [
        train.get_data_info(i)['gt_label'] for i in range(len(train))]
    files = meta['feature_bank_files']
    assert files == [osp.abspath(train.get_data_info(i)['img_path'])
                     for i in range(len(train))]
    assert all(osp.isfile(f) for f in files)
    assert float(state['head.temperature']) >= 1.0
    assert np.isfinite(float(state['head.fitted_threshold']))
    assert 'open set: temperature' in fitted['log']
    # beside the ECE on the images that fitted T, the ECE with each
    # validation image's T fitted on the other validation images
    import re
    line = next(ln for ln in fitted['log'].splitlines()
                if 'open set: temperature' in ln)
    assert re.search(r'ECE on \d+ validation images: [\d.]+% -> [\d.]+%; '
                     r'T fitted apart: [\d.]+%\)', line), line
    # and history.csv has it per epoch, beside val_ece (measured on the
    # images that fitted T)
    from rock_plugin.visualization import read_history
    apart = [float(m) for m in re.findall(r'T fitted apart: ([\d.]+)%',
                                          fitted['log'])]
    rows = read_history(osp.join(fitted['work_dir'], 'history.csv'))
    assert len(rows) == len(apart) == 2
    for row, logged in zip(rows, apart):
        # percent, like val_ece
        apart_row = float(row['val_ece_apart'])
        assert apart_row == pytest.approx(logged, abs=0.006)
        assert 0 <= float(row['val_ece']) <= 100


def test_predictions_agree_with_the_fitted_threshold(fitted):
    """The head's novelty on the validation fold is the hook's: 95 % of
    those images are kept as known (the threshold is their quantile)."""
    from rock_plugin.apis.inferencer import RockInferencer
    val = fitted['val']
    inferencer = RockInferencer(fitted['config'], fitted['checkpoint'],
                                batch_size=16)
    files = [val.get_data_info(i)['img_path'] for i in range(len(val))]
    results = inferencer(files)
    flagged = sum(r['unknown'] for r in results)
    assert flagged == len(files) - int(np.ceil(0.95 * len(files))) or \
        abs(flagged - 0.05 * len(files)) <= 1
    for r in results:
        assert len(r['neighbors']) == 3
        assert r['neighbors'][0]['similarity'] >= \
            r['neighbors'][2]['similarity']
        assert r['answer'] in (r['pred_class'], inferencer.open_set and
                               'unknown (unlike every trained class)')


def test_images_unlike_any_rock_are_unknown(fitted, tmp_path):
    from rock_plugin.apis.inferencer import RockInferencer
    noise = [make_image(str(tmp_path / f'n{i}.png'), seed=i, size=(300, 300))
             for i in range(4)]
    inferencer = RockInferencer(fitted['config'], fitted['checkpoint'])
    results = inferencer(noise)
    assert all(r['unknown'] for r in results), \
        [r['novelty'] for r in results]
    assert all(r['answer'] == 'unknown (unlike every trained class)'
               for r in results)
    inferencer.unknown_threshold = 1e9
    assert not any(r['unknown'] for r in inferencer(noise))
