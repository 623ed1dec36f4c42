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
