"""RockCheckpointHook: ties to the later epoch, best.pth / last.pth, atomic
writes (a kill or a failed write keeps the previous files)."""
import glob
import os
import os.path as osp
import resource
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import REPO

# A real mmengine Runner on a toy model whose validation "accuracy" follows a
# script, so which epoch is best is known in advance.
TOY_RUN = textwrap.dedent('''
    import os, sys
    import torch
    from torch import nn
    from mmengine.evaluator import BaseMetric, Evaluator
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    import rock_plugin  # noqa: F401

    SCORES = [float(s) for s in sys.argv[2].split(',')]
    KILL_EPOCH = int(sys.argv[3]) if len(sys.argv) > 3 else 0

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, inputs, labels, mode='tensor'):
            out = self.fc(torch.stack(inputs))
            if mode == 'loss':
                return dict(loss=nn.functional.cross_entropy(
                    out, torch.stack(labels)))
            return [out]

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return dict(inputs=torch.ones(2) * i, labels=torch.tensor(i % 2))

    class Scripted(BaseMetric):
        epoch = 0

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            Scripted.epoch += 1
            if Scripted.epoch == KILL_EPOCH:  # die inside the .pth write
                real_fsync = os.fsync

                def fsync_then_die(fd):
                    real_fsync(fd)
                    if '.pth' in os.readlink(f'/proc/self/fd/{fd}'):
                        os.kill(os.getpid(), 9)
                os.fsync = fsync_then_die
            return {'top1': SCORES[Scripted.epoch - 1]}

    loader = dict(dataset=Data(), batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    Runner(
        model=Toy(), work_dir=sys.argv[1], default_scope='mmpretrain',
        train_dataloader=loader, val_dataloader=loader,
        val_evaluator=Evaluator(Scripted(prefix='accuracy')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=len(SCORES)), val_cfg=dict(),
        default_hooks=dict(checkpoint=dict(
            type='RockCheckpointHook', interval=1, max_keep_ckpts=2,
            save_best='accuracy/top1', rule='greater')),
        custom_hooks=[dict(type='SafeCheckpointHook')],
    ).train()
''')


def toy_run(work, scores, kill_epoch=0):
    script = osp.join(work, 'toy_run.py')
    os.makedirs(work, exist_ok=True)
    with open(script, 'w') as f:
        f.write(TOY_RUN)
    return subprocess.run(
        [sys.executable, script, work, ','.join(map(str, scores)),
         str(kill_epoch)], cwd=REPO, capture_output=True, text=True,
        timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1'})


def epoch_of(path):
    return torch.load(path, weights_only=True)['meta']['epoch']


def test_ties_go_later_best_last_and_kill_keeps_previous(tmp_path):
    # Accuracy 50, 80, 80, 70, 80: mmengine's CheckpointHook keeps epoch 2;
    # ties go to the later epoch, so best is epoch 5.
    work = str(tmp_path / 'full')
    proc = toy_run(work, [50, 80, 80, 70, 80])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert epoch_of(osp.join(work, 'best.pth')) == 5
    assert osp.samefile(osp.join(work, 'best.pth'),
                        osp.join(work, 'best_accuracy_top1_epoch_5.pth'))
    assert not glob.glob(osp.join(work, 'best_accuracy_top1_epoch_[1-4].pth'))
    last = torch.load(osp.join(work, 'last.pth'), weights_only=True)
    assert last['meta']['epoch'] == 5 and 'optimizer' in last
    # max_keep_ckpts=2 as before; last.pth outlives the files it pointed at
    assert sorted(osp.basename(p) for p in glob.glob(
        osp.join(work, 'epoch_*.pth'))) == ['epoch_4.pth', 'epoch_5.pth']
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work, 'epoch_5.pth')
    assert not glob.glob(osp.join(work, '.*.tmp'))

    # SIGKILL while epoch 3's checkpoint is being written (bytes in the temp
    # file, not renamed yet): everything under a real name is the previous,
    # complete state.
    work = str(tmp_path / 'killed')
    proc = toy_run(work, [50, 80, 90, 90], kill_epoch=3)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert glob.glob(osp.join(work, '.*.pth.*.tmp'))
    for path in glob.glob(osp.join(work, '*.pth')):
        torch.load(path, weights_only=True)  # none truncated
    # Killed writing the new best (epoch 3) after mmengine removed the old
    # best_..._epoch_2.pth: best.pth still holds epoch 2.
    assert not osp.exists(osp.join(work, 'best_accuracy_top1_epoch_3.pth'))
    assert epoch_of(osp.join(work, 'best.pth')) == 2
    assert epoch_of(osp.join(work, 'last.pth')) == 3
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().endswith('epoch_3.pth')


def test_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    from mmengine.fileio import get_file_backend

    from rock_plugin.utils.atomic_backend import ATOMIC_LOCAL_BACKEND
    backend = get_file_backend(str(tmp_path),
                               backend_args=dict(backend=ATOMIC_LOCAL_BACKEND))
    path = str(tmp_path / 'epoch_1.pth')
    backend.put(b'old checkpoint', path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Python ignores SIGXFSZ: a write past the limit raises EFBIG, as a
    # full disk raises ENOSPC.
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))
    try:
        with pytest.raises(OSError, match=r'could not write .*epoch_1\.pth.*'
                           'previous file, if any, is kept'):
            backend.put(b'x' * 4096, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    with open(path, 'rb') as f:
        assert f.read() == b'old checkpoint'
    assert os.listdir(tmp_path) == ['epoch_1.pth']


def test_importing_registers_without_replacing_mmengine():
    from mmengine.fileio import LocalBackend
    from mmengine.hooks import checkpoint_hook

    import rock_plugin  # noqa: F401
    from rock_plugin.utils.atomic_backend import AtomicLocalBackend
    assert 'open' not in vars(checkpoint_hook)
    assert LocalBackend.put is not AtomicLocalBackend.put
    assert LocalBackend.put.__module__.startswith('mmengine')
