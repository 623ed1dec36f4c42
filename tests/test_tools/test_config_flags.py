"""tools/_config_flags.py edits that need no training."""
from mmengine.config import Config

from conftest import QUICKSTART, load_tool


def test_no_workers_means_no_persistent_workers():
    flags = load_tool('_config_flags')
    cfg = Config.fromfile(QUICKSTART)
    assert cfg.train_dataloader.persistent_workers is True
    flags.merge_cfg_options(cfg, {'train_dataloader.num_workers': 0})
    assert cfg.train_dataloader.persistent_workers is False
    cfg = Config.fromfile(QUICKSTART)
    flags.merge_cfg_options(cfg, {'train_dataloader.num_workers': 1})
    assert cfg.train_dataloader.persistent_workers is True  # untouched
