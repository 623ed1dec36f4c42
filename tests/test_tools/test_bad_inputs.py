"""Every bad input gets one clear message (file and line), exit 2, no
traceback, and nothing already written is lost."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_CONFIG, make_class_folders, run_tool

TRAIN = ('tools/train.py', TINY_CONFIG, '--device', 'cpu', '--seed', '0')


def _fails(*args, expect, cwd=None):
    proc = run_tool(*TRAIN, *args, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1, proc.stderr[-3000:]
    for text in expect:
        assert text in lines[0], lines[0]
    return lines[0]


def _annotated(tmp_path, train_lines, classes=('alpha', 'beta', 'gamma')):
    root = tmp_path / 'datas'
    make_class_folders(str(root / 'imgs'), per_class=4)
    (root / 'train.txt').write_text('\n'.join(train_lines) + '\n')
    if classes is not None:
        (root / 'annotations.txt').write_text(
            '\n'.join(f'{c} {i}' for i, c in enumerate(classes)) + '\n')
    return str(root)


ANN = ('--cfg-options', 'train_dataloader.dataset.ann_file=train.txt',
       'train_dataloader.dataset.classes=annotations.txt',
       'val_dataloader.dataset.ann_file=train.txt',
       'val_dataloader.dataset.classes=annotations.txt',
       'train_dataloader.dataset.split=None', 'val_dataloader.dataset.split=None')
GOOD = [f'imgs/{c}/{c}_{i}.jpg {k}' for k, c in
        enumerate(('alpha', 'beta', 'gamma')) for i in range(4)]


@pytest.mark.parametrize('bad_line,expect', [
    ('imgs/alpha/nope.jpg 0', ['train.txt:13', 'image not found']),
    ('imgs/alpha/alpha_0.jpg', ['train.txt:13', 'expected "<image path> '
                                '<label index>"']),
    ('imgs/alpha/alpha_0.jpg one', ['train.txt:13', 'is not an integer']),
    ('imgs/alpha/alpha_0.jpg 3', ['train.txt:13', 'label 3 out of range']),
])
def test_bad_annotation_lines(tmp_path, bad_line, expect):
    root = _annotated(tmp_path, GOOD + [bad_line])
    _fails('--data-root', root, '--work-dir', str(tmp_path / 'w'), *ANN,
           expect=expect)


@pytest.mark.parametrize('classes,expect', [
    (None, ['annotations.txt', 'classes file not found']),
    (('alpha', 'beta', 'alpha'), ['annotations.txt:3', 'duplicate class name']),
])
def test_bad_classes_file(tmp_path, classes, expect):
    root = _annotated(tmp_path, GOOD, classes)
    _fails('--data-root', root, '--work-dir', str(tmp_path / 'w'), *ANN,
           expect=expect)


def test_empty_class_name(tmp_path):
    root = _annotated(tmp_path, GOOD)
    with open(osp.join(root, 'annotations.txt'), 'a') as f:
        f.write('3\n')
    _fails('--data-root', root, '--work-dir', str(tmp_path / 'w'), *ANN,
           expect=['annotations.txt:4', 'empty class name'])


def test_empty_dataset(tmp_path):
    root = _annotated(tmp_path, ['# nothing here'])
    _fails('--data-root', root, '--work-dir', str(tmp_path / 'w'), *ANN,
           expect=['train.txt', 'the dataset is empty'])


def test_class_folder_without_images(tmp_path):
    root = make_class_folders(str(tmp_path / 'd'))
    os.makedirs(osp.join(root, 'delta'))
    _fails('--data-root', root, '--work-dir', str(tmp_path / 'w'),
           expect=['delta', "class 'delta' has no images"])


def test_num_classes_mismatch_given_on_the_command_line(tmp_path):
    # Without --cfg-options the classes follow the data
    # (tests/test_tools/test_train_tool.py); an explicit count must fit.
    root = make_class_folders(str(tmp_path / 'd'), classes=('a', 'b', 'c', 'd'))
    _fails('--data-root', root, '--work-dir', str(tmp_path / 'w'),
           '--cfg-options', 'model.head.num_classes=3',
           'data_preprocessor.num_classes=3',
           expect=['num_classes=3', 'has 4 classes',
                   'model.head.num_classes=4'])


@pytest.mark.parametrize('kind', ['truncated', 'text'])
def test_unreadable_image_stops_or_is_skipped(tmp_path, kind):
    root = make_class_folders(str(tmp_path / 'd'))
    bad = osp.join(root, 'beta', 'beta_3.jpg')
    data = open(bad, 'rb').read()
    with open(bad, 'wb') as f:
        f.write(data[:len(data) // 3] if kind == 'truncated' else b'hello')
    _fails('--data-root', root, '--work-dir', str(tmp_path / 'w'),
           '--cfg-options', 'train_cfg.max_epochs=1', expect=[bad])
    proc = run_tool(*TRAIN, '--data-root', root, '--work-dir',
                    str(tmp_path / 'w2'), '--skip-bad-images',
                    '--cfg-options', 'train_cfg.max_epochs=1')
    log = proc.stdout + proc.stderr
    assert f'skipping unreadable image: {bad}' in log
    assert '1 unreadable image(s) were skipped' in log


def test_odd_but_valid_images_just_work(tmp_path):
    root = make_class_folders(str(tmp_path / 'd'), per_class=4)
    rng = np.random.default_rng(0)
    odd = {
        'L': Image.fromarray(rng.integers(0, 255, (40, 40), np.uint8), 'L'),
        'CMYK': Image.new('CMYK', (40, 40), (10, 200, 30, 0)),
        'RGBA': Image.new('RGBA', (40, 40), (200, 10, 10, 128)),
        'I;16': Image.fromarray(rng.integers(0, 65535, (40, 40))
                                .astype(np.uint16)),
    }
    for name, img in odd.items():
        ext = 'jpg' if name in ('L', 'CMYK') else 'png'
        img.save(osp.join(root, 'alpha', f'odd_{name.replace(";", "")}.{ext}'))
    run_tool(*TRAIN, '--data-root', root, '--work-dir', str(tmp_path / 'w'),
             '--cfg-options', 'train_cfg.max_epochs=1')


@pytest.mark.parametrize('checkpoint,expect', [
    ('/no/such/b4.pth', ['/no/such/b4.pth', 'checkpoint not found']),
    ('http://127.0.0.1:9/b4.pth', ['could not download the pretrained']),
])
def test_missing_or_offline_pretrained_weights(tiny_data, tmp_path,
                                               checkpoint, expect):
    config = tmp_path / 'pretrained.py'
    config.write_text(
        f"_base_ = [{TINY_CONFIG!r}]\n"
        "model = dict(backbone=dict(_delete_=True, type='EfficientNet', "
        f"arch='b0', init_cfg=dict(type='Pretrained', checkpoint="
        f"{checkpoint!r}, prefix='backbone')))\n")
    proc = run_tool('tools/train.py', str(config), *TRAIN[2:], '--data-root',
                    tiny_data, '--work-dir', str(tmp_path / 'w'), check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, \
        proc.stderr[-3000:]
    for text in expect + ['model.backbone.init_cfg.checkpoint=']:
        assert text in proc.stderr


def test_cfg_options_typo_is_a_clear_error(tiny_data, tmp_path):
    _fails('--data-root', tiny_data, '--work-dir', str(tmp_path / 'w'),
           '--cfg-options', 'model.backbone.init_cfg.checkpoint=x.pth',
           expect=['--cfg-options', 'init_cfg'])


def test_work_dir_not_writable(tiny_data, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    _fails('--data-root', tiny_data, '--work-dir', str(blocker / 'run'),
           expect=['work dir', 'is not writable'])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_data, tmp_path):
    work = tmp_path / 'w'
    # epoch 1 trains normally; epoch 2 gets an absurd learning rate
    line = _fails('--data-root', tiny_data, '--work-dir', str(work),
                  '--cfg-options', 'param_scheduler.gamma=1e36',
                  'train_cfg.max_epochs=3',
                  expect=['loss became', 'epoch 2', 'last good checkpoint'])
    assert 'epoch_1.pth' in line
    assert not (work / 'epoch_2.pth').exists()
    import torch
    sd = torch.load(work / 'epoch_1.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(v.float()).all() for v in sd.values())


def test_truncated_checkpoint_for_resume(tiny_data, tmp_path):
    work = tmp_path / 'w'
    run_tool(*TRAIN, '--data-root', tiny_data, '--work-dir', str(work))
    ckpt = work / 'epoch_2.pth'
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    _fails('--data-root', tiny_data, '--work-dir', str(work), '--resume',
           str(ckpt), expect=['epoch_2.pth', 'truncated or corrupt'])
    # --resume without a path skips the truncated file, with a warning
    proc = run_tool(*TRAIN, '--data-root', tiny_data, '--work-dir', str(work),
                    '--resume', '--cfg-options', 'train_cfg.max_epochs=2')
    assert 'continuing from' in proc.stdout + proc.stderr
