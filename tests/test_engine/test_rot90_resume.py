"""configs/rock_quickstart_rot90.py keeps exact resume: killed mid-epoch 2
with no loader workers and resumed with its 2 persistent workers, it ends
with the weights and history.csv of an uninterrupted run."""
import os.path as osp

import torch
from mmengine.config import Config

from conftest import REPO, kill_config, train_killable

ROT90 = osp.join(REPO, 'configs', 'rock_quickstart_rot90.py')
# The 3-class test images (24 of 48x56), 2 epochs of 2 iterations.
OPTIONS = ('--cfg-options', 'train_cfg.max_epochs=2',
           'model.head.num_classes=3', 'data_preprocessor.num_classes=3')
NO_WORKERS = ('train_dataloader.num_workers=0',
              'train_dataloader.persistent_workers=False')


def _read(path):
    with open(path) as f:
        return f.read()


def test_rot90_quickstart_killed_mid_epoch_resumes_exactly(tiny_data,
                                                           tmp_path):
    reference = str(tmp_path / 'reference')
    train_killable(ROT90, tiny_data, reference, *OPTIONS)
    saved = Config.fromfile(osp.join(reference, 'rock_quickstart_rot90.py'))
    assert dict(type='RandomRotate90') in \
        saved.train_dataloader.dataset.pipeline
    assert saved.train_dataloader.num_workers == 2
    config = kill_config(tmp_path, ROT90, [('train_iter', 2, 1)])
    work = str(tmp_path / 'run')
    train_killable(config, tiny_data, work, *OPTIONS, *NO_WORKERS,
                   killed=True)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    train_killable(config, tiny_data, work, *OPTIONS, resume=True)
    a = torch.load(osp.join(work, 'epoch_2.pth'),
                   weights_only=True)['state_dict']
    b = torch.load(osp.join(reference, 'epoch_2.pth'),
                   weights_only=True)['state_dict']
    assert max((a[k].float() - b[k].float()).abs().max().item()
               for k in b) <= 1e-6
    assert _read(osp.join(work, 'history.csv')) == \
        _read(osp.join(reference, 'history.csv'))
