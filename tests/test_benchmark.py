"""tools/benchmark.py as a user runs it (the seconds-long --tiny mode)."""
import json
import os.path as osp

from conftest import run_tool


def test_tiny_benchmark_prints_every_section_and_writes_json(tmp_path):
    out = str(tmp_path / 'bench.json')
    proc = run_tool('tools/benchmark.py', '--tiny', '--epochs', '3',
                    '--work-dir', str(tmp_path / 'work'), '--out', out,
                    timeout=900)
    report = proc.stdout
    for row in ('train images/s (epochs 2..N)', 'val images/s, epochs 2..N',
                'epoch wall s, train+val (2..N)', 'peak RSS MiB, main process',
                'OPT-IN feature-cache mode', 'stock ImageClassificationInferencer',
                'ours RockInferencer (PyTorch)',
                'ours RockInferencer (ONNX Runtime)', 'DATA PIPELINE',
                'ours cache, pre_resize'):
        assert row in report, row
    assert 'stock and ours predict the same labels: True' in report
    assert 'same predictions: True' in report
    with open(out) as f:
        res = json.load(f)
    stock, ours = res['train']['stock'], res['train']['ours']
    # the baseline really is stock mmpretrain, ours really is the plugin
    assert stock['model_type'] == 'ImageClassifier'
    assert stock['val_loop'] == 'ValLoop'
    assert ours['model_type'] == 'RockImageClassifier'
    assert ours['val_loop'] == 'CachedFeatureValLoop'
    assert (ours['feature_passes'], ours['cached_passes']) == (1, 2)
    for run in (stock, ours):
        assert len(run['epochs']) == 3
        assert all(e['train_images'] == 12 for e in run['epochs'])
        assert run['peak_rss_mib']['main'] > 100
    # the same seed, data and init: the same validation result
    assert abs(stock['epochs'][-1]['metrics']['accuracy/top1'] -
               ours['epochs'][-1]['metrics']['accuracy/top1']) < 1e-4
    summary = res['train']['ours_summary']
    assert summary['train_ips'] > 0 and summary['epoch_s'] > 0
    assert osp.isfile(out)


def test_bad_flags_are_one_clear_error(tmp_path):
    proc = run_tool('tools/benchmark.py', '--tiny', '--epochs', '1',
                    '--work-dir', str(tmp_path), check=False)
    assert proc.returncode == 2
    assert 'error: --epochs must be at least 2' in proc.stderr
    assert 'Traceback' not in proc.stderr
    proc = run_tool('tools/benchmark.py', '--data-root',
                    str(tmp_path / 'nowhere'), '--work-dir', str(tmp_path),
                    check=False)
    assert proc.returncode == 2
    assert 'nowhere: data folder not found' in proc.stderr
