"""tools/analysis/open_set_study.py as a user runs it, on a tiny generated
data set (5 classes x 6 images, 1 view, 2 replayed epochs)."""
import os.path as osp

import numpy as np
import pytest

from conftest import load_tool, make_class_folders, read_json, run_tool

TOOL = 'tools/analysis/open_set_study.py'
CLASSES = ('amber', 'basalt', 'chalk', 'dolomite', 'eclogite')


def test_study_writes_both_tables(tmp_path):
    data = make_class_folders(str(tmp_path / 'data'), CLASSES, per_class=6)
    work, out = tmp_path / 'work', str(tmp_path / 'study.json')
    proc = run_tool(TOOL, 'configs/rock_quickstart.py', '--data-root', data,
                    '--work-dir', str(work), '--out', out, '--views', '1',
                    '--epochs', '2', '--leave-out', '1', '--repeats', '2',
                    '--norms', 'raw,l2x16')
    assert '## Normalisations (5 folds, 2 replayed epochs' in proc.stdout
    assert '## Novelty (1 of 5 classes left out, 2 draws x 5 folds' in \
        proc.stdout
    res = read_json(out)
    assert (res['images'], res['classes']) == (30, list(CLASSES))
    assert (res['config_norm'], res['feature_dim']) == ('l2x16', 1960)
    # the raw features were cached once, readable without pickle
    with np.load(res['feature_cache'], allow_pickle=False) as cache:
        assert cache['views'].shape == (1, 30, 1960)
        assert cache['centre'].shape == (30, 1960)
    assert osp.dirname(res['feature_cache']) == str(work)

    norms = res['normalisation']
    assert set(norms) == {'raw', 'l2x16'}
    for norm, stats in norms.items():
        assert f'| {norm} |' in proc.stdout
        assert set(stats) >= {'loss_epoch1', 'max_abs_logit', 'top1', 'ece',
                              't_bounded', 'ece_t_bounded', 't_free',
                              'ece_t_free', 'ece_t_bounded_other_folds'}
        for stat in stats.values():
            assert len(stat['runs']) == 5  # one per fold
            assert np.isclose(stat['mean'], np.mean(stat['runs']))
        assert all(0 <= v <= 100 for v in stats['top1']['runs'])
        assert all(0 <= v <= 100 for v in stats['ece_t_free']['runs'])
        # the hook's lower bound holds; the free fit may go below it
        assert min(stats['t_bounded']['runs']) >= 1
        assert min(stats['t_free']['runs']) >= 0.05
    # unit-length features give small logits, raw pooled ones large
    assert norms['l2x16']['max_abs_logit']['mean'] < \
        norms['raw']['max_abs_logit']['mean']

    novelty = res['novelty']
    assert len(novelty['left_out']) == 2
    assert all(len(d) == 1 for d in novelty['left_out'])
    assert novelty['left_out'][0] != novelty['left_out'][1]
    assert set(novelty['methods']) == {
        'max softmax [l2x16]', 'energy [l2x16]', 'max softmax [raw]',
        'energy [raw]', 'kNN-1 cosine', 'Mahalanobis LW',
        'fused kNN-1 + energy [l2x16] (head)'}
    for name, method in novelty['methods'].items():
        assert f'| {name} |' in proc.stdout
        assert len(method['auroc']['runs']) == 10  # 2 draws x 5 folds
        assert all(0 <= a <= 1 for a in method['auroc']['runs'])
        assert all(0 <= s <= 1 for s in method['unknown_flagged']['runs'])
        assert 0 <= method['auroc']['mean'] <= 1


def test_bad_flags_are_one_clear_error_before_extraction(tmp_path):
    study = load_tool('analysis/open_set_study')
    with pytest.raises(ValueError, match='--norms l2xbig: unknown norm'):
        study.parse_args(['rock_quickstart', '--norms', 'raw,l2xbig'])
    data = make_class_folders(str(tmp_path / 'data'), CLASSES[:3],
                              per_class=5)
    work = tmp_path / 'work'
    proc = run_tool(TOOL, 'configs/rock_quickstart.py', '--data-root', data,
                    '--work-dir', str(work), '--leave-out', '2',
                    check=False)
    assert proc.returncode == 2
    assert 'error: --leave-out 2: the data has 3 classes' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not work.exists()  # nothing extracted
