"""Each stack fix (registered component), with the breakage it answers.

Checkpoint safety has its own file, test_checkpoint_security.py."""
import socket

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import rock_plugin  # noqa: F401
from rock_plugin.engine import (CpuAmpOptimWrapper,
                                RockDistributedDataParallel, init_distributed)
from rock_plugin.engine.hooks import SafeCheckpointHook
from rock_plugin.utils.checkpoint_io import safe_checkpoint_loaders
from rock_plugin.utils.errors import CheckpointError


def _stock_checkpoint():
    hub = MessageHub('compat_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('val/confusion', __import__('numpy').eye(2))
    return dict(meta=dict(epoch=1, seed=3), state_dict={'w': torch.ones(2)},
                message_hub=hub.state_dict())


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


def test_cpu_ddp_without_device_ids(monkeypatch):
    """mmengine gives DDP device_ids=[LOCAL_RANK]; CPU modules need None."""
    import torch.distributed as dist
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    with socket.socket() as sock:  # a free port, never a fixed one
        sock.bind(('127.0.0.1', 0))
        monkeypatch.setenv('MASTER_PORT', str(sock.getsockname()[1]))
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('LOCAL_RANK', '0')
    assert init_distributed('pytorch', device='cpu') == 'gloo'
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
    with pytest.raises(CheckpointError) as exc, safe_checkpoint_loaders():
        _load_checkpoint(url, map_location='cpu')
    message = str(exc.value)
    assert 'could not download the pretrained weights' in message
    assert 'model.backbone.init_cfg.checkpoint=' in message
