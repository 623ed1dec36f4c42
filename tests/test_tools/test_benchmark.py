"""tools/analysis/benchmark.py as a user runs it (the seconds-long --tiny
mode)."""
import re

from conftest import read_json, run_tool


def test_tiny_benchmark_ends_with_the_two_speedup_lines(tmp_path):
    out = str(tmp_path / 'bench.json')
    proc = run_tool('tools/analysis/benchmark.py', '--tiny', '--repeats', '2',
                    '--work-dir', str(tmp_path / 'work'), '--out', out,
                    timeout=900)
    lines = proc.stdout.strip().splitlines()
    number = r'(\d+\.\d\d)x'
    spread = rf'{number} \(min {number}, max {number}\)'
    epoch = re.fullmatch(rf'epoch speedup: {spread}', lines[-2])
    predict = re.fullmatch(rf'predict speedup: {spread}', lines[-1])
    assert epoch and predict, lines[-2:]
    for match in (epoch, predict):
        median, low, high = map(float, match.groups())
        assert low <= median <= high
    # the same weights give the same predictions on every image: the fast
    # path (ours) agrees with the plain one (stock)
    assert 'stock and ours predict the same labels: True' in proc.stdout
    # and the same scores once ours' fitted temperature is undone: the
    # features and logits agree, not only the argmax
    at_t1 = re.search(r'(\S+) at T = 1', proc.stdout)
    assert at_t1 and float(at_t1.group(1)) < 1e-4, proc.stdout[-1500:]
    res = read_json(out)
    assert res['images'] == 44  # 4 bundled images a class, 11 classes
    assert len(res['runs']) == 2
    for pair in res['runs']:
        stock, ours = pair['stock'], pair['ours']
        # the baseline really is stock mmpretrain, ours really is the plugin
        assert (stock['model'], stock['val_loop']) == ('ImageClassifier',
                                                       'ValLoop')
        assert (ours['model'], ours['val_loop']) == ('RockImageClassifier',
                                                     'CachedFeatureValLoop')
        for run in (stock, ours):
            # full epochs: every training image, every epoch
            assert run['train_images'] == [res['n_train']] * 3
            assert len(run['epoch_s']) == 3 and run['predict_ips'] > 0
            assert len(run['scores']) == 44


def test_bad_flags_are_one_clear_error(tmp_path):
    proc = run_tool('tools/analysis/benchmark.py', '--tiny', '--epochs', '1',
                    '--work-dir', str(tmp_path), check=False)
    assert proc.returncode == 2
    assert 'error: --epochs must be at least 2' in proc.stderr
    assert 'Traceback' not in proc.stderr
    proc = run_tool('tools/analysis/benchmark.py', '--data-root',
                    str(tmp_path / 'nowhere'), '--work-dir', str(tmp_path),
                    check=False)
    assert proc.returncode == 2
    assert 'nowhere: data folder not found' in proc.stderr


def test_only_ours_reports_the_whole_recipe_time(tmp_path):
    out = str(tmp_path / 'only.json')
    proc = run_tool('tools/analysis/benchmark.py', '--tiny', '--only', 'ours',
                    '--epochs', '3', '--work-dir', str(tmp_path / 'work'),
                    '--out', out, timeout=900)
    assert re.search(r'ours alone: 3 epochs \(train \+ val \+ hooks\) in '
                     r'\d+\.\d min; epoch 1 ', proc.stdout), proc.stdout
    res = read_json(out)
    assert not res['runs'] and res['only']['role'] == 'ours'
    assert res['only']['model'] == 'RockImageClassifier'
    assert res['only']['train_images'] == [res['n_train']] * 3
