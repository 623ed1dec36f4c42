"""Each stack fix of rock_plugin.compat, with the breakage it answers."""
import io
import os
import os.path as osp
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import rock_plugin  # noqa: F401
from rock_plugin import compat
from rock_plugin.compat import (CheckpointError, CpuAmpOptimWrapper,
                                RockDistributedDataParallel,
                                SafeCheckpointHook, load_checkpoint_file)


def _stock_checkpoint():
    hub = MessageHub('compat_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('val/confusion', __import__('numpy').eye(2))
    return dict(meta=dict(epoch=1, seed=3), state_dict={'w': torch.ones(2)},
                message_hub=hub.state_dict())


def test_stock_checkpoint_fails_under_weights_only(tmp_path):
    """The breakage: torch>=2.6 refuses mmengine's HistoryBuffer."""
    path = tmp_path / 'stock.pth'
    torch.save(_stock_checkpoint(), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with pytest.raises(CheckpointError, match='refused to load.*TRUST'):
        load_checkpoint_file(str(path))
    # explicit opt-in for a trusted legacy file
    ckpt = load_checkpoint_file(str(path), trust=True)
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)


def test_safe_hook_round_trip(tmp_path):
    ckpt = _stock_checkpoint()
    SafeCheckpointHook().before_save_checkpoint(None, ckpt)
    path = tmp_path / 'safe.pth'
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)  # stock allowlist only
    SafeCheckpointHook().after_load_checkpoint(None, loaded)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.current() == 0.5
    assert loaded['message_hub']['runtime_info']['val/confusion'].tolist() == \
        [[1.0, 0.0], [0.0, 1.0]]
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_every_mmengine_load_goes_through_safe_loader(tmp_path):
    path = tmp_path / 'stock.pth'
    torch.save(_stock_checkpoint(), path)
    with pytest.raises(CheckpointError):
        _load_checkpoint(str(path))  # load_from, init_cfg, resume use this


class _Evil:
    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'pwned'
    evil = _Evil()
    _Evil.marker = str(marker)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': evil}, path)
    for trust in (False, True):
        with pytest.raises(CheckpointError, match='Nothing from it was run'):
            load_checkpoint_file(str(path), trust=trust)
    assert not marker.exists()


def test_truncated_checkpoint_names_previous_good_one(tmp_path):
    good = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, good)
    data = good.read_bytes()
    bad = tmp_path / 'epoch_2.pth'
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint_file(str(bad))
    assert 'truncated or corrupt' in str(exc.value)
    assert str(good) in str(exc.value)


def test_cpu_ddp_without_device_ids(monkeypatch):
    """mmengine gives DDP device_ids=[LOCAL_RANK]; CPU modules need None."""
    import torch.distributed as dist
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', '29517')
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('LOCAL_RANK', '0')
    assert compat.init_distributed('pytorch', device='cpu') == 'gloo'
    try:
        model = RockDistributedDataParallel(torch.nn.Linear(2, 2),
                                            device_ids=[0])
        assert model.device_ids is None
        out = model(torch.ones(1, 2))
        out.sum().backward()
    finally:
        dist.destroy_process_group()


def test_cpu_amp_autocasts_bfloat16():
    linear = torch.nn.Linear(4, 4)
    wrapper = CpuAmpOptimWrapper(torch.optim.SGD(linear.parameters(), lr=0.1))
    with wrapper.optim_context(linear):
        y = linear(torch.ones(2, 4))
    assert y.dtype == torch.bfloat16
    wrapper.update_params(y.float().sum())


def test_offline_pretrained_download_is_a_clear_error(tmp_path):
    url = 'http://127.0.0.1:9/efficientnet-b4.pth'  # nothing listens there
    with pytest.raises(CheckpointError) as exc:
        _load_checkpoint(url, map_location='cpu')
    message = str(exc.value)
    assert 'could not download the pretrained weights' in message
    assert 'model.backbone.init_cfg.checkpoint=' in message
