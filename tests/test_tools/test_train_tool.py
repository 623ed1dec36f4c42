"""tools/train.py and tools/dist_train.sh run as a user would (subprocess)."""
import csv
import json
import os
import os.path as osp
import subprocess

import pytest
import torch

from conftest import (TINY_CONFIG, launcher_failure, run_launcher,
                      run_tool)

BASE = ('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '1',
        '--deterministic')


def _history(work_dir):
    with open(osp.join(work_dir, 'history.csv'), newline='') as f:
        return list(csv.DictReader(f))


def _ckpt(path):
    return torch.load(path, weights_only=True)  # stock allowlist, no opt-in


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    """Two epochs of the tiny config; shared by the tests below."""
    work = str(tmp_path_factory.mktemp('train') / 'run')
    proc = run_tool(*BASE, '--data-root', tiny_data, '--work-dir', work)
    return work, proc


def test_train_writes_what_a_user_looks_at(trained):
    work, proc = trained
    for name in ('history.csv', 'curves.png', 'confusion_matrix.png',
                 'confusion_matrix.csv', 'epoch_2.pth', 'last_checkpoint',
                 'tiny_config.py'):
        assert osp.isfile(osp.join(work, name)), name
    assert [f for f in os.listdir(work) if f.startswith('best_accuracy_top1')]
    rows = _history(work)
    assert [r['epoch'] for r in rows] == ['1', '2']
    for row in rows:
        assert 0 < float(row['train_loss']) < 10
        assert 0 <= float(row['accuracy/top1']) <= 100
        for key in ('lr', 'accuracy/top3', 'precision', 'recall', 'f1-score',
                    'precision/alpha', 'recall/beta', 'f1-score/gamma'):
            assert row[key] != '', key
    with open(osp.join(work, 'curves.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # per-class table with class names in the log; the seed is logged
    log = proc.stdout + proc.stderr
    assert 'Per-class results' in log and 'gamma' in log
    assert 'seed 1 (repeat this run with --seed 1)' in log
    ckpt = _ckpt(osp.join(work, 'epoch_2.pth'))
    assert ckpt['meta']['seed'] == 1 and ckpt['meta']['epoch'] == 2
    assert ckpt['meta']['dataset_meta']['classes'] == ('alpha', 'beta',
                                                       'gamma')


def test_frozen_backbone_keeps_weights_and_optimizer_holds_head(trained):
    work, _ = trained
    sd = _ckpt(osp.join(work, 'epoch_2.pth'))
    first = _ckpt(osp.join(work, 'epoch_1.pth'))['state_dict']
    for key, value in sd['state_dict'].items():
        if key.startswith('backbone.'):
            assert torch.equal(value, first[key]), f'{key} changed'
    assert not torch.equal(sd['state_dict']['head.fc.weight'],
                           first['head.fc.weight'])
    # only the head's weight and bias are in the optimizer
    assert len(sd['optimizer']['param_groups'][0]['params']) == 2


def test_resume_continues_epoch_schedule_optimizer_and_history(trained,
                                                              tiny_data,
                                                              tmp_path):
    work, _ = trained
    resumed = str(tmp_path / 'resumed')
    subprocess.run(['cp', '-r', work, resumed], check=True)
    proc = run_tool(*BASE, '--data-root', tiny_data, '--work-dir', resumed,
                    '--resume', '--cfg-options', 'train_cfg.max_epochs=3')
    assert 'resumed epoch: 2' in proc.stdout + proc.stderr
    ref = str(tmp_path / 'straight')
    run_tool(*BASE, '--data-root', tiny_data, '--work-dir', ref,
             '--cfg-options', 'train_cfg.max_epochs=3')
    a = _ckpt(osp.join(resumed, 'epoch_3.pth'))
    b = _ckpt(osp.join(ref, 'epoch_3.pth'))
    assert a['meta']['epoch'] == 3 and a['meta']['iter'] == b['meta']['iter']
    # schedule: decayed after epoch 1 and still decayed after the resume; the
    # end follows the new max_epochs=3, not the checkpoint's 2
    assert a['param_schedulers'][0]['end'] == 3
    rows = _history(resumed)
    assert [r['epoch'] for r in rows] == ['1', '2', '3']
    assert [float(r['lr']) for r in rows] == pytest.approx([0.05, 0.005,
                                                            0.005])
    # optimizer state continued: momentum equals the uninterrupted run's
    for key in a['optimizer']['state']:
        torch.testing.assert_close(a['optimizer']['state'][key],
                                   b['optimizer']['state'][key])
    for key in a['state_dict']:
        torch.testing.assert_close(a['state_dict'][key], b['state_dict'][key])
    assert rows == _history(ref)


def test_resume_without_checkpoint_is_a_clear_error(tiny_data, tmp_path):
    proc = run_tool(*BASE, '--data-root', tiny_data, '--work-dir',
                    str(tmp_path / 'empty'), '--resume', check=False)
    assert proc.returncode == 2
    assert 'found no checkpoint to continue' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_resume_from_alias_and_split_validation(trained, tiny_data, tmp_path):
    work, _ = trained
    out = str(tmp_path / 'alias')
    proc = run_tool(*BASE, '--data-root', tiny_data, '--work-dir', out,
                    '--resume-from', osp.join(work, 'epoch_1.pth'),
                    '--split-validation', '--ratio', '0.25', '--fold', '2',
                    '--no-validate')
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1' in log
    assert 'fold 2 of 4' in log
    rows = _history(out)
    assert [r['epoch'] for r in rows] == ['2'] and 'accuracy/top1' not in rows[0]


def test_dist_train_two_cpu_processes(tiny_data, tmp_path):
    work = str(tmp_path / 'dist')
    proc, log = run_launcher(
        'dist_train.sh', TINY_CONFIG, '2', '--data-root', tiny_data,
        '--work-dir', work, '--device', 'cpu', '--cfg-options',
        'train_cfg.max_epochs=1')
    assert proc.returncode == 0, launcher_failure(proc)
    # both ranks took part: world size 2, and the 18 training images were
    # sharded (3 iterations of 4+ images per rank instead of 5 on one)
    assert 'world size 2 (gloo)' in log
    assert 'Epoch(train) [1][3/3]' in log and '[1][5/5]' not in log
    # rank 0 alone wrote checkpoints and history (one file each, one row)
    assert [r['epoch'] for r in _history(work)] == ['1']
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == [
        'best.pth', 'best_accuracy_top1_epoch_1.pth', 'epoch_1.pth',
        'last.pth']
    # the random seed was drawn on rank 0 and broadcast: one seed in the log
    seeds = {line.split('seed ')[1].split(' ')[0] for line in log.splitlines()
             if 'rock_plugin: seed' in line}
    assert len(seeds) == 1


def test_quick_start_classes_follow_the_data_of_every_image_mode(tmp_path):
    """The README's own-data command, no --cfg-options: 3 class folders of
    grayscale, palette, 16-bit, alpha and CMYK images train the shipped quick
    start (head, data preprocessor and top-k follow, one log line) and
    predict."""
    from conftest import QUICKSTART, make_image, read_csv_dicts
    data = tmp_path / 'own'
    modes = ('L', 'P', 'I;16', 'RGBA', 'LA', 'CMYK', 'RGB')
    for c, name in enumerate(('calcite', 'dolomite', 'quartz')):
        for i, mode in enumerate(modes):
            ext = '.jpg' if mode in ('L', 'RGB', 'CMYK') else '.png'
            make_image(str(data / name / f'{name}{i}_{mode.replace(";", "")}'
                           f'{ext}'), seed=10 * c + i, size=(80, 64),
                       mode=mode)
    work = tmp_path / 'work'
    proc = run_tool('tools/train.py', QUICKSTART, '--data-root', str(data),
                    '--work-dir', str(work), '--device', 'cpu',
                    '--cfg-options', 'train_cfg.max_epochs=1',
                    fresh=True)
    out = proc.stdout + proc.stderr
    assert 'classes follow the data: 3 classes' in out
    from mmengine.config import Config
    saved = Config.fromfile(str(work / 'rock_quickstart.py'))
    assert saved.model.head.num_classes == 3
    assert saved.data_preprocessor.num_classes == 3
    assert tuple(saved.val_evaluator.topk) == (1, )
    pred = tmp_path / 'p.csv'
    run_tool('tools/predict.py', str(work / 'rock_quickstart.py'),
             str(work / 'last.pth'), str(data), '--out', str(pred))
    rows = read_csv_dicts(str(pred))
    assert len(rows) == 3 * len(modes)
    assert {r['pred_class'] for r in rows} <= {'calcite', 'dolomite',
                                                'quartz'}
