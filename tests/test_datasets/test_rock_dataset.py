"""RockDataset: both layouts, classes files, the stratified split, errors."""
import os
import os.path as osp

import pytest

import rock_plugin  # noqa: F401
from rock_plugin.datasets import DataError, RockDataset, stratified_fold_split
from rock_plugin.datasets.split import default_fold, num_folds


def _write(path, lines):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


def test_folder_per_class(tiny_data):
    ds = RockDataset(data_root=tiny_data)
    assert ds.metainfo['classes'] == ('alpha', 'beta', 'gamma')
    assert len(ds) == 24
    info = ds.get_data_info(0)
    assert info['img_path'].startswith(tiny_data) and info['gt_label'] == 0


def test_annotation_files(tiny_data, tmp_path):
    # the original layout: paths relative to data_root, backslashes, spaces
    root = tmp_path / 'datas'
    os.makedirs(root / 'imgs dir')
    src = osp.join(tiny_data, 'beta', 'beta_0.jpg')
    os.symlink(src, root / 'imgs dir' / 'b 0.jpg')
    _write(root / 'train.txt', ['imgs dir\\b 0.jpg 1', f'{src} 1'])
    _write(root / 'annotations.txt', ['alpha 0', 'beta 1', 'gamma 2'])
    ds = RockDataset(data_root=str(root), ann_file='train.txt',
                     classes='annotations.txt')
    assert len(ds) == 2
    assert ds.get_data_info(0)['img_path'] == str(root / 'imgs dir' / 'b 0.jpg')
    assert ds.get_data_info(1)['img_path'] == src  # absolute path kept
    assert ds.metainfo['classes'] == ('alpha', 'beta', 'gamma')


@pytest.mark.parametrize('lines,message', [
    (['missing.jpg 0'], 'train.txt:1: image not found'),
    (['x.jpg 7'], 'train.txt:1: label 7 out of range'),
    (['x.jpg zero'], "train.txt:1: label 'zero' is not an integer"),
    ([], 'train.txt: the dataset is empty'),
])
def test_annotation_errors(tmp_path, lines, message):
    _write(tmp_path / 'train.txt', lines)
    _write(tmp_path / 'classes.txt', ['a', 'b'])
    (tmp_path / 'x.jpg').write_bytes(b'')
    with pytest.raises(DataError) as exc:
        RockDataset(data_root=str(tmp_path), ann_file='train.txt',
                    classes='classes.txt')
    assert message in str(exc.value)


def test_missing_classes_file(tmp_path):
    _write(tmp_path / 'train.txt', ['x.jpg 0'])
    with pytest.raises(DataError, match='classes file not found'):
        RockDataset(data_root=str(tmp_path), ann_file='train.txt',
                    classes='annotations.txt')
    with pytest.raises(DataError, match='needs class names'):
        RockDataset(data_root=str(tmp_path), ann_file='train.txt')


def test_empty_class_folder(tiny_data, tmp_path):
    os.makedirs(tmp_path / 'a')
    os.makedirs(tmp_path / 'b')
    (tmp_path / 'a' / 'x.jpg').write_bytes(b'')
    with pytest.raises(DataError, match="class 'b' has no images"):
        RockDataset(data_root=str(tmp_path))


def test_split_is_stratified_disjoint_and_reproducible(tiny_data):
    kwargs = dict(data_root=tiny_data, val_ratio=0.25, split_seed=7)
    train = RockDataset(split='train', **kwargs)
    val = RockDataset(split='val', **kwargs)
    paths_t = {d['img_path'] for d in train.load_data_list()}
    paths_v = {d['img_path'] for d in val.load_data_list()}
    assert not paths_t & paths_v and len(paths_t | paths_v) == 24
    assert sorted(val.get_gt_labels().tolist()) == [0, 0, 1, 1, 2, 2]
    again = RockDataset(split='val', **kwargs)
    assert {d['img_path'] for d in again.load_data_list()} == paths_v
    assert val.fold == default_fold(7, 0.25) == 3


def test_folds_cover_every_sample_once():
    labels = [0] * 20 + [1] * 21 + [2] * 22
    seen = []
    for fold in range(num_folds(0.2)):
        train, val = stratified_fold_split(labels, 0.2, fold, seed=3)
        assert not set(train) & set(val)
        assert len(train) + len(val) == len(labels)
        seen.extend(val)
    assert sorted(seen) == list(range(len(labels)))
    # stratified: every class keeps about its share in validation
    _, val = stratified_fold_split(labels, 0.2, 0, seed=3)
    counts = [sum(labels[i] == c for i in val) for c in range(3)]
    assert counts == [4, 4, 4]
    assert stratified_fold_split(labels, 0.2, 1, 5) != \
        stratified_fold_split(labels, 0.2, 1, 6)


def test_bad_fold():
    with pytest.raises(ValueError, match='fold must be in'):
        stratified_fold_split([0, 1], 0.2, fold=5)


# -- issue 14: duplicates, one class, unvalidated classes, huge images --------
def _listed_twice_with_copies(root):
    """train.txt listing every image twice, plus a byte copy per class."""
    import shutil

    from conftest import make_class_folders
    make_class_folders(str(root / 'imgs'), per_class=4)
    lines = []
    for k, name in enumerate(('alpha', 'beta', 'gamma')):
        shutil.copy(root / 'imgs' / name / f'{name}_0.jpg',
                    root / 'imgs' / name / 'copy of 0.jpg')
        lines += [f'imgs/{name}/{name}_{i}.jpg {k}' for i in range(4)] * 2
        lines.append(f'imgs/{name}/copy of 0.jpg {k}')
    _write(root / 'train.txt', lines)
    _write(root / 'annotations.txt', ['alpha 0', 'beta 1', 'gamma 2'])
    return root


def _content(path):
    with open(path, 'rb') as f:
        return f.read()


def test_duplicate_lines_read_once_and_copies_never_straddle(tmp_path):
    root = _listed_twice_with_copies(tmp_path)
    kwargs = dict(data_root=str(root), ann_file='train.txt',
                  classes='annotations.txt', val_ratio=0.25,
                  serialize_data=False)  # (its gc.collect() takes ~1 s)
    assert len(RockDataset(**kwargs)) == 15  # 12 images + 3 copies, once each
    for seed in range(10):
        train = RockDataset(split='train', split_seed=seed, **kwargs)
        val = RockDataset(split='val', split_seed=seed, **kwargs)
        paths_t = [d['img_path'] for d in train.load_data_list()]
        paths_v = [d['img_path'] for d in val.load_data_list()]
        assert len(set(paths_t)) == len(paths_t) and \
            len(set(paths_v)) == len(paths_v)
        assert not set(paths_t) & set(paths_v)
        assert not {_content(p) for p in paths_t} & \
            {_content(p) for p in paths_v}
        assert len(paths_t) + len(paths_v) == 15


def test_one_path_with_two_labels_is_an_error(tmp_path):
    from conftest import make_class_folders
    make_class_folders(str(tmp_path / 'imgs'), per_class=2)
    _write(tmp_path / 'train.txt', ['imgs/alpha/alpha_0.jpg 0',
                                    'imgs/beta/beta_0.jpg 1',
                                    'imgs/alpha/alpha_0.jpg 1'])
    with pytest.raises(DataError, match=r'train\.txt:3: .*alpha_0\.jpg is '
                       'listed again with label 1, but line 1 gives it '
                       'label 0'):
        RockDataset(data_root=str(tmp_path), ann_file='train.txt',
                    classes=['alpha', 'beta'])


def test_split_without_copies_is_unchanged():
    """Distinct group keys give exactly the ungrouped split."""
    labels = [0] * 9 + [1] * 7 + [2] * 5
    keys = [f'f{i}' for i in range(len(labels))]
    for fold in range(5):
        assert stratified_fold_split(labels, 0.2, fold, 3, groups=keys) == \
            stratified_fold_split(labels, 0.2, fold, 3)


def _bomb_png(path, width=14000, height=13000):
    """A valid grayscale PNG over PIL's decompression-bomb limit (2 x
    Image.MAX_IMAGE_PIXELS): 182 M black pixels in 0.2 MB."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return (struct.pack('>I', len(data)) + body +
                struct.pack('>I', zlib.crc32(body) & 0xffffffff))

    z = zlib.compressobj()
    rows = b'\0' * ((width + 1) * 100)  # filter byte + pixels, 100 rows
    idat = b''.join(z.compress(rows) for _ in range(height // 100))
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' +
                chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0,
                                           0, 0, 0)) +
                chunk(b'IDAT', idat + z.flush()) + chunk(b'IEND', b''))


def _train(*args, check=True):
    from conftest import TINY_CONFIG, run_tool
    return run_tool('tools/train.py', TINY_CONFIG, '--device', 'cpu',
                    '--seed', '0', *args, check=check)


def _one_error_line(proc):
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def test_train_tool_on_messy_data_warns_and_skips(tmp_path):
    """As a user meets it: `--split-validation` on a train.txt with repeated
    lines and copies, a class of one image, and a decompression bomb, which
    stops training with one error naming it unless --skip-bad-images."""
    root = _listed_twice_with_copies(tmp_path / 'datas')
    bomb = root / 'imgs' / 'gamma' / 'huge.png'
    _bomb_png(bomb)
    with open(root / 'train.txt', 'a') as f:
        f.write('imgs/gamma/huge.png 2\nimgs/delta.jpg 3\n')
    import shutil
    shutil.copy(root / 'imgs' / 'beta' / 'beta_1.jpg', root / 'imgs' /
                'delta.jpg')  # (a copy too, of a beta image)
    _write(root / 'annotations.txt', ['alpha 0', 'beta 1', 'gamma 2',
                                      'delta 3'])
    args = ('--data-root', str(root), '--split-validation', '--ratio', '0.25',
            '--cfg-options', 'train_cfg.max_epochs=1',
            'train_dataloader.dataset.ann_file=train.txt',
            'train_dataloader.dataset.classes=annotations.txt',
            'model.head.num_classes=4', 'data_preprocessor.num_classes=4')
    error = _one_error_line(_train('--work-dir', str(tmp_path / 'w1'), *args,
                                   check=False))
    assert str(bomb) in error and 'too large to decode safely' in error

    proc = _train('--work-dir', str(tmp_path / 'w2'), '--skip-bad-images',
                  *args)
    log = proc.stdout + proc.stderr
    assert f'skipping unreadable image: {bomb}' in log
    assert 'train.txt:5: imgs/alpha/alpha_0.jpg is already listed on line 1' \
        in log
    assert '2 files are copies of one image, kept on one side of the split' \
        in log
    assert "class 'delta' has no image in validation fold" in log
    assert 'never validated and counts as 0 in the macro-averaged' in log


def test_one_class_is_an_error(tmp_path):
    from conftest import make_class_folders
    root = make_class_folders(str(tmp_path / 'd'), classes=('alpha', ))
    error = _one_error_line(_train(
        '--data-root', root, '--work-dir', str(tmp_path / 'w'),
        '--cfg-options', 'model.head.num_classes=1',
        'data_preprocessor.num_classes=1', check=False))
    assert "only one class ('alpha')" in error and root in error
