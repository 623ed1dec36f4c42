"""prepare_dataset and the dataset tools, as a user would run them."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import load_tool, make_image, snapshot
from rock_plugin.datasets import RockDataset
from rock_plugin.datasets.annotations import (DataError, load_annotations,
                                              load_classes)

run_cli = load_tool('_common').run_cli
# Offline jobs: tools/dataset/ holds them, not the package.
_demo_subset = load_tool('dataset/_demo_subset')
make_subset = _demo_subset.make_subset
pick_per_class = _demo_subset.pick_per_class
prepare_dataset = load_tool('dataset/_prepare').prepare_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REAL_DATA = osp.join(REPO, '..', 'shared', 'data', 'rock_thin_sections')


def make_tree(root, per_class=(10, 10, 5), names=('Bauxite', 'Chert',
                                                  'Sparry Limestone')):
    """A clean folder-per-class tree of distinct noise images."""
    for c, (name, n) in enumerate(zip(names, per_class)):
        for i in range(n):
            make_image(osp.join(root, name, f'{name[0]}{i:02d}.jpg'),
                       seed=1000 * c + i)
    return root


def add_bad_files(root):
    """One of each excluded kind, in class 'Chert'."""
    with open(osp.join(root, 'Chert', 'notes.jpg'), 'w') as f:
        f.write('not an image')
    with open(osp.join(root, 'Chert', 'C00.jpg'), 'rb') as f:
        data = f.read()
    with open(osp.join(root, 'Chert', 'cut.jpg'), 'wb') as f:
        f.write(data[:len(data) // 2])
    shutil.copy(osp.join(root, 'Chert', 'C01.jpg'),
                osp.join(root, 'Chert', 'C01 copy.jpg'))


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def run_tool(*args):
    """Run a tool in a fresh interpreter, exactly as a user would."""
    return subprocess.run([sys.executable, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def call_tool(script, argv, capsys):
    """Run a tool's main in-process (no 5 s start-up): (code, out, err)."""
    module = load_tool(osp.relpath(script, 'tools')[:-3])
    code = run_cli(module.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_annotate_layout_example(tmp_path):
    # The layout `tools/dataset/prepare_dataset.py photos data --mode
    # annotate` writes.
    src = str(tmp_path / 'photos')
    make_image(osp.join(src, 'Bauxite', 'b1.jpg'), 1)
    make_image(osp.join(src, 'Bauxite', 'b2.jpg'), 2)
    make_image(osp.join(src, 'Bauxite', 'b3.jpg'), 3)
    make_image(osp.join(src, 'Chert', 'c1.jpg'), 4)
    make_image(osp.join(src, 'Chert', 'thin sections', 'c 2.jpg'), 5)
    out = str(tmp_path / 'data')
    report, written = prepare_dataset(src, out, test_ratio=0.34, seed=0)
    assert report.ok
    assert sorted(map(osp.basename, written)) == [
        'annotations.txt', 'classes.txt', 'test.txt', 'train.txt']
    assert read(osp.join(out, 'train.txt')) == (
        '../photos/Bauxite/b1.jpg 0\n'
        '../photos/Bauxite/b2.jpg 0\n'
        '../photos/Chert/c1.jpg 1\n')
    assert read(osp.join(out, 'test.txt')) == (
        '../photos/Bauxite/b3.jpg 0\n'
        '../photos/Chert/thin sections/c 2.jpg 1\n')
    assert read(osp.join(out, 'annotations.txt')) == 'Bauxite 0\nChert 1\n'
    assert read(osp.join(out, 'classes.txt')) == 'Bauxite\nChert\n'
    assert report.split_counts == {'train': [2, 1], 'test': [1, 1]}
    ds = RockDataset(data_root=out, ann_file='train.txt',
                     classes='annotations.txt', lazy_init=False)
    assert len(ds) == 3 and ds.metainfo['classes'] == ('Bauxite', 'Chert')
    assert osp.isfile(ds.get_data_info(2)['img_path'])
    assert load_classes(osp.join(out, 'classes.txt')) == ['Bauxite', 'Chert']


def test_bad_files_are_left_out(tmp_path):
    src = make_tree(str(tmp_path / 'src'))
    add_bad_files(src)
    report, _ = prepare_dataset(src, str(tmp_path / 'out'), seed=3)
    assert {(p.kind, p.path) for p in report.problems} == {
        ('not_image', 'Chert/notes.jpg'), ('truncated', 'Chert/cut.jpg'),
        ('duplicate', 'Chert/C01.jpg')}
    listed = [p for name in ('train.txt', 'test.txt')
              for p, _, _ in load_annotations(str(tmp_path / 'out' / name))]
    names = sorted(p.split('/src/', 1)[1] for p in listed)
    assert len(names) == 25 and len(set(names)) == 25
    # 'C01 copy.jpg' sorts first, so it is the copy kept; 'C01.jpg' is not.
    assert 'Chert/C01 copy.jpg' in names and 'Chert/C01.jpg' not in names
    assert not {'Chert/notes.jpg', 'Chert/cut.jpg'} & set(names)


def test_split_is_stratified_and_reproducible(tmp_path):
    src = make_tree(str(tmp_path / 'src'), per_class=(10, 20, 5))
    outs = {}
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        report, _ = prepare_dataset(src, str(tmp_path / name), seed=seed,
                                    test_ratio=0.2)
        outs[name] = (read(str(tmp_path / name / 'train.txt')),
                      read(str(tmp_path / name / 'test.txt')))
        assert report.split_counts == {'train': [8, 16, 4],
                                       'test': [2, 4, 1]}
        train = {ln.rsplit(' ', 1)[0] for ln in outs[name][0].splitlines()}
        test = {ln.rsplit(' ', 1)[0] for ln in outs[name][1].splitlines()}
        assert not train & test and len(train | test) == 35
        assert '\\' not in outs[name][0] + outs[name][1]
    assert outs['a'] == outs['b']
    assert outs['a'][1] != outs['c'][1]
    # Another fold of the same seed: a disjoint test part.
    prepare_dataset(src, str(tmp_path / 'f1'), seed=0, fold=1)
    test0 = set(outs['a'][1].splitlines())
    assert not test0 & set(read(str(tmp_path / 'f1' / 'test.txt'))
                           .splitlines())
    with pytest.raises(ValueError, match='fold must be in'):
        prepare_dataset(src, str(tmp_path / 'x'), fold=5)
    with pytest.raises(ValueError, match='mode must be one of'):
        prepare_dataset(src, str(tmp_path / 'x'), mode='move')


@pytest.mark.parametrize('mode', ['copy', 'symlink'])
def test_copy_and_symlink_modes(tmp_path, mode):
    src = make_tree(str(tmp_path / 'src'))
    out = str(tmp_path / 'out')
    _, written = prepare_dataset(src, out, mode=mode, seed=0)
    images = [p for p in written if not p.endswith('.txt')]
    assert len(images) == 25
    lines = read(osp.join(out, 'test.txt')).splitlines()
    assert lines[0].startswith('test/Bauxite/B') and lines[0].endswith(' 0')
    assert any(ln.startswith('test/Sparry Limestone/') for ln in lines)
    for path in images:
        assert osp.islink(path) == (mode == 'symlink')
        with open(path, 'rb') as f:
            Image.open(f).load()
    for part in ('train', 'test'):
        ds = RockDataset(data_root=out, ann_file=f'{part}.txt',
                         classes='annotations.txt')
        # The copied tree is a folder-per-class dataset by itself too.
        folders = RockDataset(data_root=osp.join(out, part))
        assert len(ds) == len(folders)
    # A second run must not mix old and new images...
    with pytest.raises(DataError, match='already holds files'):
        prepare_dataset(src, out, mode=mode, seed=1)
    # ...unless asked to replace them.
    prepare_dataset(src, out, mode=mode, seed=1, overwrite=True)
    listed = set(read(osp.join(out, 'test.txt')).split('\n'))
    on_disk = {f'test/{osp.relpath(osp.join(d, n), osp.join(out, "test"))}'
               for d, _, files in os.walk(osp.join(out, 'test'))
               for n in files}
    assert {ln.rsplit(' ', 1)[0] for ln in listed if ln} == on_disk


def test_output_inside_source_is_refused(tmp_path):
    src = make_tree(str(tmp_path / 'src'))
    with pytest.raises(DataError, match='inside the source folder'):
        prepare_dataset(src, osp.join(src, 'splits'))
    with pytest.raises(DataError, match='overlaps the source'):
        prepare_dataset(src, src, mode='copy')


def test_annotate_in_place_and_comment_like_names(tmp_path):
    # Writing the files into the source root itself is fine; a class named
    # '#1' must not turn its lines into comments.
    src = make_tree(str(tmp_path / 'src'), per_class=(3, 3),
                    names=('#1', 'Chert'))
    prepare_dataset(src, src, seed=0)
    text = read(osp.join(src, 'train.txt'))
    assert text.splitlines()[0].startswith('./#1/')
    ds = RockDataset(data_root=src, ann_file='train.txt',
                     classes='annotations.txt')
    assert len(ds) == 4 and ds.metainfo['classes'] == ('#1', 'Chert')


def test_strict_fails_before_writing(tmp_path):
    src = make_tree(str(tmp_path / 'src'))
    add_bad_files(src)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'train.txt').write_text('old/file.jpg 0\n')
    before = snapshot(str(out))
    for mode in ('annotate', 'copy'):
        with pytest.raises(DataError, match='strict mode: 3 problem') as err:
            prepare_dataset(src, str(out), mode=mode, strict=True)
        assert 'Chert/notes.jpg' in str(err.value)
        assert err.value.report.problem_counts() == {
            'not_image': 1, 'truncated': 1, 'duplicate': 1}
        assert snapshot(str(out)) == before
    with pytest.raises(DataError):
        prepare_dataset(src, str(tmp_path / 'new'), strict=True)
    assert not (tmp_path / 'new').exists()
    # Clean data passes strict mode.
    clean = make_tree(str(tmp_path / 'clean'))
    report, _ = prepare_dataset(clean, str(tmp_path / 'ok'), strict=True)
    assert report.ok


def test_make_subset(tmp_path):
    src = str(tmp_path / 'src')
    make_tree(src, per_class=(6, 3))
    for i in range(6):  # large images: downscaled
        make_image(osp.join(src, 'Bauxite', f'B{i:02d}.jpg'), i, (120, 90))
    make_image(osp.join(src, 'Chert', 'big.png'), 99, (90, 120))
    shutil.copy(osp.join(src, 'Chert', 'C00.jpg'),
                osp.join(src, 'Chert', 'C00 again.jpg'))
    info = make_subset(src, str(tmp_path / 'a'), per_class=4, size=60,
                       quality=80, seed=0)
    assert info['per_class'] == {'Bauxite': 4, 'Chert': 4}
    assert (60, 80) in info['sizes'] and (80, 60) in info['sizes']
    again = make_subset(src, str(tmp_path / 'b'), per_class=4, size=60,
                        quality=80, seed=0)
    assert snapshot(str(tmp_path / 'a')) == snapshot(str(tmp_path / 'b'))
    chosen = snapshot(str(tmp_path / 'a'))
    assert all(name.endswith('.jpg') for name in chosen)
    # Never both copies of a duplicate.
    assert {'Chert/C00.jpg', 'Chert/C00 again.jpg'} - set(
        p.replace(os.sep, '/') for p in chosen)
    assert again['bytes'] == sum(len(b) for b in chosen.values())
    with pytest.raises(DataError, match='over the 0.001 MiB limit'):
        make_subset(src, str(tmp_path / 'c'), per_class=4, max_mb=0.001)
    assert not (tmp_path / 'c').exists()
    with pytest.raises(DataError, match='not empty'):
        make_subset(src, str(tmp_path / 'a'), per_class=2)
    make_subset(src, str(tmp_path / 'a'), per_class=2, overwrite=True)
    assert len(snapshot(str(tmp_path / 'a'))) == 4
    assert pick_per_class(['a', 'b', 'c'], 2, 0, 'x') == pick_per_class(
        ['c', 'b', 'a'], 2, 0, 'x')
    # Default: every usable, distinct image (the duplicate's copy left out).
    every = make_subset(src, str(tmp_path / 'all'), size=60)
    assert every['per_class'] == {'Bauxite': 6, 'Chert': 4}


def test_prepare_dataset_tool(tmp_path, capsys):
    src = make_tree(str(tmp_path / 'src'))
    add_bad_files(src)
    out = str(tmp_path / 'out')
    res = run_tool('tools/dataset/prepare_dataset.py', src, out,
                   '--test-ratio', '0.2', '--seed', '1', '--mode', 'annotate')
    assert res.returncode == 0, res.stderr
    assert 'Sparry Limestone' in res.stdout and 'total' in res.stdout
    assert '3 problem(s) in 28 images' in res.stdout
    assert 'Left out of the split: 3 file(s)' in res.stdout
    assert osp.join(out, 'train.txt') in res.stdout
    assert len(load_annotations(osp.join(out, 'test.txt'))) == 5

    code, out, err = call_tool('tools/dataset/prepare_dataset.py',
                               [src, str(tmp_path / 'strict'), '--strict'],
                               capsys)
    assert code == 2
    assert 'truncated' in out  # the table and problems come first
    assert err.startswith('error: --strict: 3 problem(s) found; nothing was '
                          'written')
    assert not (tmp_path / 'strict').exists()


def test_rerun_keeps_the_previous_split_files(tmp_path, capsys):
    """annotate mode over an earlier (here hand-edited) split: the files
    that change are kept as <name>.<time>.bak; unchanged ones get none."""
    src = make_tree(str(tmp_path / 'src'), per_class=(4, 4, 4))
    out = tmp_path / 'out'
    argv = [src, str(out), '--mode', 'annotate']
    assert call_tool('tools/dataset/prepare_dataset.py', argv, capsys)[0] == 0
    first = snapshot(str(out))
    edited = first['train.txt'] + b'# my hand-added note\n'
    (out / 'train.txt').write_bytes(edited)
    code, stdout, _ = call_tool('tools/dataset/prepare_dataset.py',
                                argv + ['--seed', '5'], capsys)
    assert code == 0
    backups = {name: data for name, data in snapshot(str(out)).items()
               if name.endswith('.bak')}
    # train.txt (edited, then re-split) and test.txt (re-split) changed
    assert sorted(name.split('.')[0] for name in backups) == ['test', 'train']
    assert backups[next(n for n in backups if n.startswith('train'))] == \
        edited
    assert 'the previous train.txt is kept as' in stdout
    # an identical rerun leaves no backup behind
    call_tool('tools/dataset/prepare_dataset.py', argv + ['--seed', '5'],
              capsys)
    assert len([n for n in os.listdir(out) if n.endswith('.bak')]) == 2


def test_check_dataset_tool(tmp_path, capsys):
    src = make_tree(str(tmp_path / 'src'))
    out = str(tmp_path / 'out')
    prepare_dataset(src, out)
    code, stdout, _ = call_tool(
        'tools/dataset/check_dataset.py',
        [out, '--ann-file', 'train.txt', '--ann-file', 'test.txt',
         '--strict'], capsys)
    assert code == 0
    assert 'No problems found in 25 images' in stdout
    assert 'train.txt' in stdout and 'test.txt' in stdout
    add_bad_files(src)
    res = run_tool('tools/dataset/check_dataset.py', src, '--strict')
    assert res.returncode == 2
    assert 'not_image (not an image file):' in res.stdout
    assert res.stderr.startswith('error: ')
    assert '--strict: 3 problem(s) found' in res.stderr
    assert 'Traceback' not in res.stderr


def test_make_demo_subset_tool(tmp_path, capsys):
    src = make_tree(str(tmp_path / 'src'), per_class=(5, 5))
    out = str(tmp_path / 'demo')
    res = run_tool('tools/dataset/make_demo_subset.py', src, out,
                   '--per-class', '3', '--size', '32', '--quality', '80',
                   '--max-mb', '1')
    assert res.returncode == 0, res.stderr
    assert 'Wrote 6 images in 2 classes' in res.stdout
    assert 'sizes 38x32' in res.stdout
    with Image.open(osp.join(out, 'Bauxite', os.listdir(
            osp.join(out, 'Bauxite'))[0])) as img:
        assert img.size == (38, 32) and img.format == 'JPEG'
    code, _, err = call_tool('tools/dataset/make_demo_subset.py',
                             [src, str(tmp_path / 'big'), '--max-mb',
                              '0.0001'], capsys)
    assert code == 2 and 'MiB limit' in err
    assert not (tmp_path / 'big').exists()


def test_real_rock_thin_sections(tmp_path):
    if not osp.isdir(REAL_DATA):
        pytest.skip(f'real data not found at {osp.normpath(REAL_DATA)} '
                    '(the shared rock_thin_sections copy is absent)')
    out = str(tmp_path / 'rocks')
    report, _ = prepare_dataset(REAL_DATA, out, test_ratio=0.2, seed=0)
    assert len(report.class_names) == 11 and sum(report.counts) == 234
    # The source holds one byte-identical pair (Chamosite-HematiteOolite
    # 26_27 / 26_28): a real duplicate, left out of the split.
    assert all(p.kind == 'duplicate' for p in report.problems)
    train = RockDataset(data_root=out, ann_file='train.txt',
                        classes='annotations.txt')
    test = RockDataset(data_root=out, ann_file='test.txt',
                       classes='annotations.txt')
    assert len(train) + len(test) == 234 - len(report.excluded)
    assert len(test) == sum(report.split_counts['test'])
    assert min(report.split_counts['test']) >= 4
    assert train.metainfo['classes'][0] == 'AnhydriteRock'
    assert osp.isfile(test.get_data_info(0)['img_path'])
