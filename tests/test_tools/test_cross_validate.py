"""K-fold cross-validation: fold assignment, and tools/cross_validate.py as a
user runs it (summary files, rerun skips, resume, TTA, reruns with another
config or data refused, --fresh, bad input)."""
import json
import os
import os.path as osp
import shutil
import signal
import sys
import time

import numpy as np
import pytest

from conftest import (DEMO_DATA, QUICKSTART, REPO, launcher_failure,
                      load_tool, make_class_folders, read_csv_dicts,
                      read_json, run_launcher, run_tool)

TINY_TTA = osp.join(REPO, 'tests', 'data', 'tiny_tta_config.py')
KILL_HOOK = osp.join(REPO, 'tests', 'data', 'kill_hook.py')
CV = ('tools/cross_validate.py', TINY_TTA, '--folds', '2', '--seed', '3',
      '--device', 'cpu')
KILL_ENV = dict(PYTHONPATH=osp.dirname(KILL_HOOK))


def _cv_main(*argv):
    """tools/cross_validate.py's main in this process (its errors raise)."""
    from unittest import mock
    with mock.patch.dict(os.environ), \
            mock.patch.object(sys, 'path', [osp.dirname(KILL_HOOK),
                                            *sys.path]):
        # (--device cpu hides CUDA: undone; kill_hook importable)
        return load_tool('cross_validate').main(list(argv))


def _cv(config, *argv):
    """CV's flags on another config."""
    return (CV[0], config, *CV[2:], *argv)


# --------------------------------------------------------------- folds --

def test_folds_are_disjoint_stratified_and_cover_every_image():
    from rock_plugin.datasets.kfold import assign_folds
    labels = np.repeat(np.arange(4), [21, 20, 22, 5])
    folds = assign_folds(labels, 5, seed=0)
    assert folds.shape == labels.shape and set(folds) == set(range(5))
    for c in range(4):  # each class spread evenly: sizes differ by <= 1
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    assert np.array_equal(folds, assign_folds(labels, 5, seed=0))
    assert not np.array_equal(folds, assign_folds(labels, 5, seed=1))


def test_grouped_folds_never_split_a_sample():
    from rock_plugin.datasets.kfold import assign_folds, group_keys
    paths = [f'/d/{c}/{c}{s}_{t}.jpg' for c in 'ab' for s in range(6)
             for t in range(4)]
    labels = [0 if '/a/' in p else 1 for p in paths]
    groups = group_keys(paths, r'^(.*)_\d+\.jpg$')
    assert groups[:5] == ['a0'] * 4 + ['a1']
    folds = assign_folds(labels, 3, seed=0, groups=groups)
    for g in set(groups):
        assert len({f for f, h in zip(folds, groups) if h == g}) == 1
    assert set(folds) == {0, 1, 2}
    nested = [f'/d/a/slide{s}/t{t}.jpg' for s in range(3) for t in range(2)]
    assert group_keys(nested, 'folder') == group_keys(nested,
                                                      'folder:1')
    assert len(set(group_keys(nested, 'folder'))) == 3
    assert set(group_keys(nested, 'folder:2')) == {'/d/a'}


def test_fold_errors_are_clear():
    from rock_plugin.datasets.kfold import assign_folds, group_keys
    from rock_plugin.utils.errors import DataError
    # the package names its argument (tools/cross_validate.py: --folds)
    with pytest.raises(DataError, match=r"class 'rare' has 3 images, fewer "
                       r'than folds=5.*folds=3 or fewer'):
        assign_folds([0] * 10 + [1] * 3, 5, class_names=['common', 'rare'])
    with pytest.raises(DataError, match=r"class 'b' has 2 groups, fewer "
                       'than folds=3'):
        assign_folds([0] * 6 + [1] * 6, 3, groups=list('aabbcc' + 'xxxyyy'),
                     class_names='ab')
    with pytest.raises(DataError, match='matches none of the 2 file names '
                       r'\(e.g. a.jpg, b.jpg\)'):
        group_keys(['/x/a.jpg', '/x/b.jpg'], r'^(\d+)_')
    with pytest.raises(DataError, match='does not match 1 of the 2'):
        group_keys(['/x/s1_1.jpg', '/x/b.jpg'], r'^(s\d+)_')
    with pytest.raises(DataError, match='not a valid regular expression'):
        group_keys(['/x/a.jpg'], '(')


# ---------------------------------------------------------------- tool --

@pytest.fixture(scope='module')
def cv_run(tiny_data, tmp_path_factory):
    """A 2-fold run killed in fold 0's second epoch, then rerun to the end
    with the same config (a rerun with another is refused): the kill hook
    fires once per fold dir, and fold 1's marker says it already did.

    Returns:
        tuple: ``(work dir, log of the rerun, config)``.
    """
    work = str(tmp_path_factory.mktemp('cv') / 'run')
    kill_cfg = osp.join(osp.dirname(work), 'kill_config.py')
    from mmengine.config import Config
    hooks = [dict(h) for h in Config.fromfile(TINY_TTA).custom_hooks]
    hooks.append(dict(type='KillAtHook', points=[('train_iter', 2, 1)]))
    with open(kill_cfg, 'w') as f:
        f.write(f'_base_ = [{TINY_TTA!r}]\n'
                "custom_imports = dict(imports=['rock_plugin', 'kill_hook'])\n"
                f'custom_hooks = {hooks!r}\n')
    os.makedirs(osp.join(work, 'fold_1'))
    open(osp.join(work, 'fold_1', '.killed_0'), 'w').close()
    killed = run_tool(*_cv(kill_cfg), '--data-root', tiny_data, '--work-dir',
                      work, env=KILL_ENV, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert os.listdir(osp.join(work, 'fold_0')).count('epoch_1.pth') == 1
    done = run_tool(*_cv(kill_cfg), '--data-root', tiny_data, '--work-dir',
                    work, env=KILL_ENV)
    return work, done.stdout + done.stderr, kill_cfg


def test_every_image_is_validated_once_and_summaries_are_written(
        cv_run, tiny_data):
    work, log, _ = cv_run
    folds = read_csv_dicts(osp.join(work, 'folds.csv'))
    assert len(folds) == 24 and {r['fold'] for r in folds} == {'0', '1'}
    oof = read_csv_dicts(osp.join(work, 'oof_predictions.csv'))
    assert sorted(r['file'] for r in oof) == sorted(r['file'] for r in folds)
    assert {r['file']: r['fold'] for r in oof} == \
        {r['file']: r['fold'] for r in folds}
    assert set(oof[0]) == {'file', 'true', 'predicted', 'fold', 'alpha',
                           'beta', 'gamma'}
    for k in (0, 1):  # a fold trains on the others, validates on itself
        val = open(osp.join(work, f'fold_{k}', 'val.txt')).read().split('\n')
        train = open(osp.join(work, f'fold_{k}', 'train.txt')).read()
        assert len([v for v in val if v]) == 12
        assert not {v for v in val if v} & set(train.split('\n'))
    rows = read_csv_dicts(osp.join(work, 'cv_summary.csv'))
    assert [r['fold'] for r in rows] == ['0', '1', 'mean', 'std']
    top1 = [float(r['top1']) for r in rows[:2]]
    assert float(rows[2]['top1']) == pytest.approx(np.mean(top1), abs=1e-3)
    assert float(rows[3]['top1']) == pytest.approx(np.std(top1, ddof=1),
                                                   abs=1e-3)
    assert {'precision', 'recall', 'f1', 'f1/alpha', 'f1/gamma'} <= set(
        rows[0])
    summary = read_json(osp.join(work, 'cv_summary.json'))
    assert summary['num_images'] == 24 and summary['folds_k'] == 2
    confusion = np.array(summary['pooled']['confusion'])
    assert confusion.sum() == 24 and list(confusion.sum(1)) == [8, 8, 8]
    with open(osp.join(work, 'oof_confusion_matrix.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert 'Cross-validation: top-1' in log and 'mean ± std' in log
    # the ECE again with each image's temperature fitted on the other
    # images of its fold (the head's raw scores are kept for it)
    result = read_json(osp.join(work, 'fold_0', 'cv_result.json'))
    assert result['raw_score_kept'] is True
    assert all(len(p['raw_score']) == 3 for p in result['plain'])
    assert all(0 <= float(r['ece_crossfit']) <= 100 for r in rows)
    assert 0 <= summary['pooled']['ece_crossfit'] <= 100
    assert 'T fitted apart' in log and 'ECE, T fitted apart' in log


def test_an_interrupted_fold_resumes_and_a_rerun_skips_finished_folds(
        cv_run, tiny_data, capsys, monkeypatch):
    work, log, config = cv_run
    assert 'fold 1 of 2' in log and 'resuming from' in log
    assert 'fold_0/epoch_1.pth' in log.split('resuming from')[1][:300]
    history = read_csv_dicts(osp.join(work, 'fold_0', 'history.csv'))
    assert [r['epoch'] for r in history] == ['1', '2']
    before = read_json(osp.join(work, 'fold_0', 'cv_result.json'))
    # fold 0 as a run from before the raw scores were kept: the rerun
    # predicts it again from its checkpoint, without training
    from rock_plugin.utils.atomic_io import atomic_write_json
    old = dict(before, plain=[{k: v for k, v in p.items() if k != 'raw_score'}
                              for p in before['plain']])
    del old['raw_score_kept']
    atomic_write_json(osp.join(work, 'fold_0', 'cv_result.json'), old)
    # a rerun with --tta trains nothing and only adds the TTA evaluation
    again = run_tool(*_cv(config), '--tta', '--data-root', tiny_data,
                     '--work-dir', work, env=KILL_ENV)
    log = again.stdout + again.stderr
    assert 'Epoch(train)' not in log
    after = read_json(osp.join(work, 'fold_0', 'cv_result.json'))
    assert len(after['plain']) == len(before['plain']) == 12
    for a, b in zip(after['plain'], before['plain']):
        assert a['img_path'] == b['img_path']
        np.testing.assert_allclose(a['pred_score'], b['pred_score'],
                                   atol=1e-6)
        np.testing.assert_allclose(a['raw_score'], b['raw_score'], atol=1e-6)
    assert len(after['tta']) == 12 and after['raw_score_kept'] is True
    for name in ('cv_summary_tta.csv', 'oof_predictions_tta.csv',
                 'oof_confusion_matrix_tta.png'):
        assert osp.isfile(osp.join(work, name))
    assert 'Cross-validation with TTA: top-1' in log
    # and once more: every fold done, the same summary
    import rock_plugin.utils.progress as progress
    bars, real = [], progress.ProgressBar
    monkeypatch.setattr(progress, 'ProgressBar', lambda *a, **kw: (
        bars.append((a, kw)), real(*a, **kw))[1])
    summary = _cv_main(*_cv(config)[1:], '--tta', '--data-root', tiny_data,
                       '--work-dir', work)
    assert capsys.readouterr().out.count('done, skipped') == 2
    # folds done before start the bar as done: its ETA is this run's rate
    assert bars == [(('cross-validation folds', ),
                     dict(total=2, completed=2, transient=False))]
    assert summary['tta']['mean'] == read_json(
        osp.join(work, 'cv_summary_tta.json'))['mean']
    # other folds in the same work dir: a clear error, nothing touched
    with pytest.raises(ValueError, match='use another --work-dir'):
        _cv_main(*_cv(config)[1:], '--folds', '3', '--data-root', tiny_data,
                 '--work-dir', work)


def _error_line(proc):
    errors = [ln for ln in proc.stderr.splitlines()
              if ln.startswith('error:')]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    return errors[0]


def test_a_rerun_with_another_config_is_refused(cv_run, tiny_data):
    """Another head setting, other epochs: refused before anything runs,
    naming the plan file and the settings, the old results untouched."""
    work, _, config = cv_run
    plan = osp.join(work, 'cv_plan.json')
    kept = {name: open(osp.join(work, name), 'rb').read()
            for name in ('cv_plan.json', 'folds.csv', 'cv_summary.json')}
    proc = run_tool(*_cv(config), '--data-root', tiny_data, '--work-dir',
                    work, '--cfg-options', 'train_cfg.max_epochs=3',
                    'model.head.loss.loss_weight=0.5', env=KILL_ENV,
                    check=False)
    line = _error_line(proc)
    assert f'{plan}: planned with another config (' in line
    assert 'model.head.loss.loss_weight 1.0 then, 0.5 now' in line
    assert 'train_cfg.max_epochs 2 then, 3 now' in line
    assert '--fresh' in line and 'done, skipped' not in proc.stdout
    for name, data in kept.items():
        assert open(osp.join(work, name), 'rb').read() == data


def test_other_data_or_an_old_plan_is_refused_and_fresh_starts_over(
        tmp_path):
    data = make_class_folders(str(tmp_path / 'data'), per_class=3)
    work = str(tmp_path / 'cv')
    plan_file = osp.join(work, 'cv_plan.json')
    args = (*CV, '--data-root', data, '--work-dir', work, '--cfg-options',
            'train_cfg.max_epochs=1')
    run_tool(*args)
    first = read_json(plan_file)
    assert first['num_images'] == 9
    assert set(first['fingerprint']) == {'config', 'data'}
    shutil.copy(osp.join(data, 'beta', 'beta_0.jpg'),
                osp.join(data, 'beta', 'beta_3.jpg'))
    line = _error_line(run_tool(*args, check=False))
    assert f'{plan_file}: planned on other data (9 images then, 10 now)' \
        in line
    # a plan written before fingerprints: cannot be checked, refused
    old = dict(first)
    del old['fingerprint']
    with open(plan_file, 'w') as f:
        json.dump(old, f)
    assert 'stored no fingerprint' in _error_line(run_tool(*args,
                                                           check=False))
    # --fresh: the earlier run moves into previous_runs/, a new one runs
    proc = run_tool(*args, '--fresh')
    log = proc.stdout + proc.stderr
    assert 'done, skipped' not in log and 'fold 2 of 2' in log
    archived = os.listdir(osp.join(work, 'previous_runs'))
    assert len(archived) == 1
    earlier = osp.join(work, 'previous_runs', archived[0])
    assert {'cv_plan.json', 'folds.csv', 'cv_summary.json', 'fold_0',
            'fold_1'} <= set(os.listdir(earlier))
    assert osp.isfile(osp.join(earlier, 'fold_0', 'last.pth'))
    now = read_json(plan_file)
    assert now['num_images'] == 10 and now['fingerprint'] != \
        first['fingerprint']
    assert read_json(osp.join(work, 'cv_summary.json'))['num_images'] == 10


@pytest.mark.parametrize('pattern,message', [
    # the probe's pattern: the regex package does not backtrack on it
    ('(a+)+$', 'matches none of the 6 file names'),
    # one it does backtrack on: stopped after a second
    ('(a|aa)+$', "the pattern took over 1 s on "),
])
def test_a_runaway_group_by_pattern_fails_fast(tmp_path, pattern,
                                               message):
    from rock_plugin.utils.image_files import list_images
    data = make_class_folders(str(tmp_path / 'data'), per_class=2)
    for path in list_images(data):  # aaaa...a_1.jpg in every class
        name = 'a' * 40 + '_' + osp.basename(path).split('_')[1]
        os.rename(path, osp.join(osp.dirname(path), name))
    start = time.monotonic()
    # the shipped quick start: the pattern is refused before any training
    proc = run_tool(*_cv(QUICKSTART), '--group-by', pattern, '--data-root',
                    data, '--work-dir', str(tmp_path / 'cv'), check=False,
                    timeout=120)
    line = _error_line(proc)
    assert line.startswith(f"error: --group-by '{pattern}'") and \
        message in line, line
    if 'took over' in message:
        assert f"{'a' * 40}_0.jpg; simplify it" in line
    assert time.monotonic() - start < 120


def test_bad_inputs_are_clear_errors(tiny_data, tmp_path):
    from rock_plugin.utils.errors import DataError
    args = (*CV[1:], '--data-root', tiny_data)
    with pytest.raises(DataError, match="class 'alpha' has 8 images, fewer "
                       'than --folds 9'):
        _cv_main(*args, '--folds', '9', '--work-dir', str(tmp_path / 'a'))
    with pytest.raises(DataError, match="class 'alpha' has 1 groups, fewer "
                       'than --folds 2'):
        _cv_main(*args, '--group-by', r'^([a-z]+)_', '--work-dir',
                 str(tmp_path / 'c'))
    with pytest.raises(ValueError, match='--split-validation: the folds '
                       'decide the split'):
        _cv_main(*args, '--split-validation')
    assert not osp.exists(tmp_path / 'a' / 'folds.csv')
    # as a user sees it: one error line, exit code 2
    proc = run_tool(*CV, '--group-by', r'^(\d+)-', '--data-root', tiny_data,
                    '--work-dir', str(tmp_path / 'b'), check=False)
    assert proc.returncode == 2
    assert 'error: --group-by' in proc.stderr
    assert 'matches none of the 24 file names' in proc.stderr


def test_two_processes_under_dist_train_sh(tmp_path):
    """TOOL=cross_validate.py bash tools/dist_train.sh CONFIG 2 ..."""
    data = make_class_folders(str(tmp_path / 'data'), per_class=4)
    work = str(tmp_path / 'dist')
    proc, log = run_launcher(
        'dist_train.sh', TINY_TTA, '2', '--folds', '2', '--device', 'cpu',
        '--data-root', data, '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1', env=dict(TOOL='cross_validate.py'))
    assert proc.returncode == 0, launcher_failure(proc)
    assert 'world size 2' in log or 'world_size: 2' in log
    oof = read_csv_dicts(osp.join(work, 'oof_predictions.csv'))
    # the distributed sampler's padding is not counted twice
    assert len(oof) == 12 and len({r['file'] for r in oof}) == 12
    assert log.count('Cross-validation: top-1') == 1  # rank 0 alone


def test_readme_command_on_the_shipped_quick_start(tmp_path):
    """The README's `cross_validate.py configs/rock_quickstart.py --tta` on
    the bundled data with the shipped loaders (workers on, persistent),
    shortened to 2 folds of 1 epoch: every bundled image is validated once,
    plain and with TTA, and each fold keeps its best.pth/last.pth."""
    from mmengine.config import Config
    if not osp.isdir(DEMO_DATA):
        pytest.skip('bundled demo data missing')
    work = str(tmp_path / 'cv')
    proc = run_tool('tools/cross_validate.py', QUICKSTART, '--folds', '2',
                    '--tta', '--work-dir', work, '--cfg-options',
                    'train_cfg.max_epochs=1', fresh=True)
    images = sum(len(files) for _, _, files in os.walk(DEMO_DATA))
    for suffix in ('', '_tta'):
        summary = read_json(osp.join(work, f'cv_summary{suffix}.json'))
        assert summary['num_images'] == images == 233
        assert summary['folds_k'] == 2
        oof = read_csv_dicts(osp.join(work, f'oof_predictions{suffix}.csv'))
        assert len({r['file'] for r in oof}) == images
    for k in (0, 1):
        fold = osp.join(work, f'fold_{k}')
        assert osp.isfile(osp.join(fold, 'best.pth'))
        assert osp.isfile(osp.join(fold, 'last.pth'))
        run = Config.fromfile(osp.join(fold, 'rock_quickstart.py'))
        assert run.train_dataloader.num_workers == 2
        assert run.train_dataloader.persistent_workers
        assert run.train_dataloader.dataset.pipeline[1].scale == 260
        assert run.tta_model.type == 'LogMeanClsScoreTTA'  # README table
    assert 'Cross-validation with TTA: top-1' in proc.stdout + proc.stderr
    # the README's "ECE, T fitted apart", plain and with TTA, from the raw
    # scores each fold keeps
    for suffix in ('', '_tta'):
        summary = read_json(osp.join(work, f'cv_summary{suffix}.json'))
        assert 0 <= summary['pooled']['ece_crossfit'] <= 100
        assert all('ece_crossfit' in row for row in summary['folds'])
    result = read_json(osp.join(work, 'fold_0', 'cv_result.json'))
    assert all(len(p['raw_score']) == 11 for p in result['plain'])
