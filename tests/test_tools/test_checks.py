"""Dataset checks: every problem kind on small generated images."""
import io
import os
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
from PIL import Image

from conftest import load_tool, make_image
from rock_plugin.datasets import RockDataset
from rock_plugin.datasets.annotations import DataError
from rock_plugin.utils.image_files import scan_class_tree

# The checks are an offline tool's work (tools/dataset/), not the package's.
_checks = load_tool('dataset/_checks')
PROBLEM_KINDS = _checks.PROBLEM_KINDS
check_class_tree = _checks.check_class_tree
check_images = _checks.check_images
inspect_image = _checks.inspect_image
check_annotation_files = load_tool('dataset/_prepare').check_annotation_files

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def jpeg_bytes(seed=0, size=(48, 40)):
    buf = io.BytesIO()
    arr = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255)
    Image.fromarray(arr.astype(np.uint8)).save(buf, 'JPEG')
    return buf.getvalue()


def kinds(report):
    return sorted((p.kind, p.path) for p in report.problems)


def test_clean_tree_is_ok(tmp_path):
    for c, name in enumerate(['Bauxite', 'Chert']):
        for i in range(3):
            make_image(str(tmp_path / name / f'{i}.jpg'), seed=10 * c + i)
    classes, samples, skipped = scan_class_tree(str(tmp_path))
    report = check_images(samples, root=str(tmp_path), class_names=classes,
                          workers=2)
    assert report.ok and report.problems == []
    assert report.counts == report.usable_counts == [3, 3]
    assert report.excluded == set() and skipped == []
    table = report.format_table()
    assert 'Bauxite' in table and 'Chert' in table and 'total' in table
    assert report.format_problems().startswith('No problems found in 6 images')


def test_truncated_and_corrupt_images(tmp_path):
    data = jpeg_bytes(1)
    (tmp_path / 'half.jpg').write_bytes(data[:len(data) // 2])
    (tmp_path / 'no_end.jpg').write_bytes(data[:-2])  # missing EOI marker
    png = tmp_path / 'ok.png'
    make_image(str(png), seed=2, fmt='PNG')
    broken = bytearray(png.read_bytes())
    broken[200] ^= 0xFF  # inside the pixel data: CRC / zlib error
    (tmp_path / 'broken.png').write_bytes(bytes(broken))
    samples = [('half.jpg', 0), ('no_end.jpg', 0), ('broken.png', 0),
               ('ok.png', 0)]
    report = check_images(samples, root=str(tmp_path), min_per_class=1)
    assert kinds(report) == [('corrupt', 'broken.png'),
                             ('truncated', 'half.jpg'),
                             ('truncated', 'no_end.jpg')]
    assert report.excluded == {0, 1, 2}
    assert report.usable_counts == [1] and not report.ok
    text = report.format_problems()
    assert 'truncated (truncated image data):' in text and 'half.jpg' in text


def test_not_an_image_and_missing(tmp_path):
    (tmp_path / 'notes.jpg').write_text('these are my field notes\n')
    (tmp_path / 'empty.png').write_bytes(b'')
    make_image(str(tmp_path / 'a.jpg'))
    samples = [('notes.jpg', 0), ('empty.png', 0), ('gone.jpg', 0),
               ('a.jpg', 0)]
    report = check_images(samples, root=str(tmp_path), min_per_class=1)
    assert kinds(report) == [('missing', 'gone.jpg'),
                             ('not_image', 'empty.png'),
                             ('not_image', 'notes.jpg')]
    assert 'empty file' in next(p.detail for p in report.problems
                                if p.path == 'empty.png')
    assert report.excluded == {0, 1, 2}


def test_duplicates_within_and_across_classes(tmp_path):
    for name in ('A', 'B'):
        for i in range(3):
            make_image(str(tmp_path / name / f'{i}.jpg'),
                       seed=100 * ord(name) + i)
    # Same class: the first copy is kept, the second reported and left out.
    shutil.copy(tmp_path / 'A' / '0.jpg', tmp_path / 'A' / '0_copy.jpg')
    # Another class: nobody knows which label is right, both are left out.
    shutil.copy(tmp_path / 'A' / '1.jpg', tmp_path / 'B' / 'x.jpg')
    classes, samples, _ = scan_class_tree(str(tmp_path))
    report = check_images(samples, root=str(tmp_path), class_names=classes)
    assert kinds(report) == [('duplicate', 'A/0_copy.jpg'),
                             ('label_conflict', 'A/1.jpg'),
                             ('label_conflict', 'B/x.jpg')]
    dup = next(p for p in report.problems if p.kind == 'duplicate')
    assert dup.detail == 'same bytes as A/0.jpg'
    conflict = next(p for p in report.problems if p.path == 'B/x.jpg')
    assert "'B'" in conflict.detail and 'A/1.jpg' in conflict.detail
    assert sorted(map(sorted, report.duplicate_groups)) == [
        ['A/0.jpg', 'A/0_copy.jpg'], ['A/1.jpg', 'B/x.jpg']]
    excluded = {samples[i][0] for i in report.excluded}
    assert excluded == {'A/0_copy.jpg', 'A/1.jpg', 'B/x.jpg'}
    assert report.counts == [4, 4] and report.usable_counts == [2, 3]


def test_tiny_image_reported_but_kept(tmp_path):
    make_image(str(tmp_path / 'thin.png'), size=(100, 20), fmt='PNG')
    make_image(str(tmp_path / 'ok.png'), seed=1, size=(32, 32), fmt='PNG')
    report = check_images([('thin.png', 0), ('ok.png', 0)],
                          root=str(tmp_path), min_size=32)
    assert kinds(report) == [('too_small', 'thin.png')]
    assert '100x20 px' in report.problems[0].detail
    assert report.excluded == set()  # usable, only worth knowing


def test_classes_with_too_few_or_no_images(tmp_path):
    make_image(str(tmp_path / 'Big' / '0.jpg'), seed=0)
    make_image(str(tmp_path / 'Big' / '1.jpg'), seed=1)
    make_image(str(tmp_path / 'Lonely' / '0.jpg'), seed=2)
    (tmp_path / 'Empty').mkdir()
    (tmp_path / 'Empty' / 'readme.txt').write_text('nothing yet')
    classes, samples, skipped = scan_class_tree(str(tmp_path))
    assert classes == ['Big', 'Empty', 'Lonely']
    assert skipped == ['Empty/readme.txt']
    report = check_class_tree(str(tmp_path), min_per_class=2)
    assert report.class_names == classes and report.skipped == skipped
    assert kinds(report) == [('too_few_images', 'Empty'),
                             ('too_few_images', 'Lonely')]
    assert report.counts == [2, 0, 1]
    assert '0 usable image(s) of 0 listed' in report.problems[0].detail
    assert 'Ignored 1 file(s)' in report.format_problems()
    # A class left with one usable image once a copy is dropped counts too.
    shutil.copy(tmp_path / 'Big' / '0.jpg', tmp_path / 'Big' / '0b.jpg')
    os.remove(tmp_path / 'Big' / '1.jpg')
    classes, samples, _ = scan_class_tree(str(tmp_path))
    report = check_images(samples, root=str(tmp_path), class_names=classes)
    assert ('too_few_images', 'Big') in kinds(report)


@pytest.mark.parametrize('mode,fmt', [('L', 'JPEG'), ('CMYK', 'JPEG'),
                                      ('I;16', 'PNG'), ('RGBA', 'PNG'),
                                      ('P', 'PNG')])
def test_odd_modes_are_valid(tmp_path, mode, fmt):
    ext = '.jpg' if fmt == 'JPEG' else '.png'
    path = make_image(str(tmp_path / f'odd{ext}'), mode=mode, fmt=fmt)
    report = check_images([(f'odd{ext}', 0)], root=str(tmp_path),
                          min_per_class=1)
    assert report.ok, report.format_problems()
    assert report.modes == {mode: 1}
    assert f'{mode} 1' in report.format_problems()
    # What makes them valid: the training loader reads them as 3 channels.
    with open(path, 'rb') as f:
        assert mmcv.imfrombytes(f.read(), flag='color').shape == (40, 48, 3)


def test_inspect_image_details(tmp_path):
    path = make_image(str(tmp_path / 'a.png'), size=(30, 20), fmt='PNG')
    info = inspect_image(path)
    assert (info.status, info.size, info.mode, info.format) == (
        'ok', (30, 20), 'RGB', 'PNG')
    assert len(info.sha256) == 64


def test_labels_and_class_names(tmp_path):
    make_image(str(tmp_path / 'a.jpg'))
    with pytest.raises(DataError, match='label 3 out of range'):
        check_images([('a.jpg', 3)], root=str(tmp_path),
                     class_names=['x', 'y'])
    report = check_images([('a.jpg', 1)], root=str(tmp_path),
                          min_per_class=0)
    assert report.class_names == ['0', '1'] and report.counts == [0, 1]


def test_problem_list_is_capped(tmp_path):
    for i in range(5):
        (tmp_path / f'{i}.jpg').write_text('not an image')
    report = check_images([(f'{i}.jpg', 0) for i in range(5)],
                          root=str(tmp_path), min_per_class=0)
    text = report.format_problems(limit=2)
    assert '... and 3 more' in text and text.startswith('5 problem(s)')
    assert list(report.problem_counts()) == ['not_image']
    assert set(report.problem_counts()) <= set(PROBLEM_KINDS)


def test_check_annotation_files_finds_leaks_and_missing(tmp_path):
    for c in range(2):
        for i in range(3):
            make_image(str(tmp_path / 'img' / f'{c}_{i}.jpg'), seed=c * 10 + i)
    shutil.copy(tmp_path / 'img' / '0_0.jpg', tmp_path / 'img' / 'again.jpg')
    (tmp_path / 'annotations.txt').write_text('Chert 1\nBauxite 0\n')
    (tmp_path / 'train.txt').write_text(
        'img/0_0.jpg 0\nimg\\0_1.jpg 0\nimg/1_0.jpg 1\nimg/1_1.jpg 1\n')
    (tmp_path / 'test.txt').write_text(
        'img/again.jpg 0\nimg/1_2.jpg 1\nimg/missing.jpg 1\n# comment\n'
        'img/1_1.jpg 1\n')
    report = check_annotation_files(str(tmp_path), ['train.txt', 'test.txt'],
                                    'annotations.txt')
    assert report.class_names == ['Bauxite', 'Chert']
    assert kinds(report) == [('duplicate', 'img/1_1.jpg'),
                             ('duplicate', 'img/again.jpg'),
                             ('missing', 'img/missing.jpg')]
    assert report.problems[0].kind == 'missing'  # worst kind listed first
    by_path = {p.path: p.detail for p in report.problems}
    assert by_path['img/missing.jpg'] == 'file not found [test.txt:3]'
    assert by_path['img/again.jpg'].startswith(
        'same bytes as img/0_0.jpg [train.txt:1]; in two annotation files')
    assert by_path['img/1_1.jpg'].startswith(
        'listed twice (first at train.txt:4)')
    assert report.split_counts == {'train.txt': [2, 2], 'test.txt': [1, 3]}
    assert 'train.txt' in report.format_table()

    with pytest.raises(DataError, match='annotation file not found'):
        check_annotation_files(str(tmp_path), ['val.txt'], 'annotations.txt')
    (tmp_path / 'bad.txt').write_text('img/0_0.jpg 7\n')
    with pytest.raises(DataError, match=r'bad\.txt:1: label 7 out of range'):
        check_annotation_files(str(tmp_path), ['bad.txt'], 'annotations.txt')


def test_bundled_demo_subset_is_clean_and_small():
    demo = osp.join(REPO, 'demo', 'rock_thin_sections')
    if not osp.isdir(demo):
        pytest.skip('demo/rock_thin_sections is not in this checkout')
    classes, samples, skipped = scan_class_tree(demo)
    report = check_images(samples, root=demo, class_names=classes,
                          min_size=224)
    assert report.ok, report.format_problems()
    # Every distinct image of the shared set (its one duplicate left out).
    assert len(classes) == 11 and not skipped and len(samples) == 233
    assert set(report.counts) == {20, 21, 22}
    assert {i.size for i in report.images} == {(320, 256)}
    # The quick start reads it directly, folder per class.
    val = RockDataset(data_root=demo, split='val', val_ratio=0.2)
    assert len(val) == 44 and len(val.metainfo['classes']) == 11
    total = sum(osp.getsize(osp.join(dirpath, f))
                for dirpath, _, files in os.walk(osp.join(REPO, 'demo'))
                for f in files)
    assert total <= 8 * 1000 * 1000  # demo/ as a whole stays <= 8 MB
    for name in ('README.md', 'LICENSE'):
        with open(osp.join(REPO, 'demo', name), encoding='utf-8') as f:
            assert 'Copyright (c) 2025 Tong-zt' in f.read()
