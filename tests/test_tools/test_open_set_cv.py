"""tools/cross_validate.py --leave-out-classes K --repeats R as a user runs
it: the classes left out vanish from each repeat's training, the table and
files hold the open-set scores, a rerun skips finished repeats; bad flags
and a k-fold plan in its work dir are refused."""
import os
import os.path as osp

import numpy as np
import pytest

from conftest import (QUICKSTART, load_tool, read_csv_dicts, read_json,
                      run_tool)

CLASSES = ('amber', 'basalt', 'chert', 'dolomite', 'eclogite')


def make_distinct_classes(root, per_class=6, size=64, seed=0):
    """A folder per class of :data:`CLASSES`; each class its own colour
    and stripe direction and width, so that the classes look different to
    an ImageNet backbone."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40),
               (200, 40, 200)]
    yy, xx = np.mgrid[:size, :size]
    for c, name in enumerate(CLASSES):
        os.makedirs(osp.join(root, name), exist_ok=True)
        stripes = ((xx if c % 2 else yy) // (4 + 3 * c)) % 2
        for i in range(per_class):
            img = np.asarray(colours[c], np.float32) * (
                0.6 + 0.4 * stripes[..., None])
            img = img + rng.integers(0, 40, img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                osp.join(root, name, f'{name}_{i}.jpg'), quality=95)
    return root


def test_leave_classes_out_end_to_end(tmp_path):
    """5 classes x 6 images, 2 folds, K=1, R=2, 1 epoch of the shipped
    quick start: per repeat 4 known classes (12 training, 12 validation
    images) and the 6 images of the class left out."""
    import torch
    from mmengine.config import Config
    data = make_distinct_classes(str(tmp_path / 'data'))
    work = str(tmp_path / 'open_set')
    args = ('tools/cross_validate.py', QUICKSTART, '--leave-out-classes',
            '1', '--repeats', '2', '--folds', '2', '--seed', '0',
            '--device', 'cpu', '--data-root', data, '--work-dir', work,
            '--cfg-options', 'train_cfg.max_epochs=1')
    proc = run_tool(*args)
    log = proc.stdout + proc.stderr
    plan = read_json(osp.join(work, 'cv_plan.json'))
    left = [r['left_out'] for r in plan['repeat_plans']]
    assert len(left) == 2 and all(len(x) == 1 for x in left)
    assert left[0] != left[1]  # distinct draws
    for r, (name, ) in enumerate(left):
        folder = osp.join(work, f'repeat_{r}')
        known = [c for c in CLASSES if c != name]
        run_cfg = Config.fromfile(osp.join(folder, 'rock_quickstart.py'))
        assert list(run_cfg.train_dataloader.dataset.classes) == known
        assert run_cfg.model.head.num_classes == 4
        assert run_cfg.data_preprocessor.num_classes == 4
        meta = torch.load(osp.join(folder, 'last.pth'),
                          weights_only=True)['meta']
        assert list(meta['dataset_meta']['classes']) == known
        bank = meta['feature_bank_files']
        assert len(bank) == 12 and not any(f'/{name}/' in f for f in bank)
        train = open(osp.join(folder, 'train.txt')).read()
        assert f'/{name}/' not in train and train.count('\n') == 12
    rows = read_csv_dicts(osp.join(work, 'open_set_cv.csv'))
    assert [r['repeat'] for r in rows] == ['0', '1', 'mean', 'std']
    assert [r['left_out'] for r in rows[:2]] == [x[0] for x in left]
    assert {(r['known_images'], r['unknown_images'])
            for r in rows[:2]} == {('12', '6')}
    for key in ('auroc', 'msp_auroc', 'unknown_flagged', 'known_flagged',
                'top1'):
        values = [float(r[key]) for r in rows[:2]]
        assert float(rows[2][key]) == pytest.approx(np.mean(values),
                                                    abs=1e-3)
        assert float(rows[3][key]) == pytest.approx(
            np.std(values, ddof=1), abs=1e-3)
    summary = read_json(osp.join(work, 'open_set_cv.json'))
    assert summary['num_repeats'] == 2 and summary['leave_out_classes'] == 1
    # the novelty score tells these classes apart from the known ones
    assert summary['mean']['auroc'] > 0.8, summary['repeats']
    for row in summary['repeats']:
        assert 0 <= row['msp_auroc'] <= 1 and 0 <= row['top1'] <= 100
    preds = read_csv_dicts(osp.join(work, 'open_set_predictions.csv'))
    for r, (name, ) in enumerate(left):
        unknown = [p for p in preds if p['repeat'] == str(r) and
                   p['known'] == '0']
        assert len(unknown) == 6 and {p['true'] for p in unknown} == {name}
        assert all(p['predicted'] != name for p in preds
                   if p['repeat'] == str(r))
    assert 'Open-set: AUROC novelty' in log and 'repeat 2 of 2' in log
    # a rerun skips both repeats and rewrites the same summary
    again = run_tool(*args)
    assert 'repeat 0: done, skipped' in again.stdout
    assert read_json(osp.join(work, 'open_set_cv.json')) == summary


@pytest.mark.parametrize('flags,message', [
    (['--repeats', '3'], '--repeats needs --leave-out-classes K'),
    (['--leave-out-classes', '0'], 'must be at least 1'),
    (['--leave-out-classes', '1', '--repeats', '0'], 'must be at least 1'),
    (['--leave-out-classes', '1', '--tta'], '--tta: not with'),
])
def test_bad_flags(flags, message):
    cv = load_tool('cross_validate')
    with pytest.raises(ValueError, match=message):
        cv.parse_args([QUICKSTART, *flags])
    args, _ = cv.parse_args([QUICKSTART, '--leave-out-classes', '2'])
    assert args.repeats == 5
    args, _ = cv.parse_args([QUICKSTART])
    assert args.leave_out_classes is None and args.repeats is None


def test_k_fold_and_open_set_plans_never_mix(tmp_path):
    """A k-fold rerun in an open-set work dir (and the reverse) is refused
    by its plan; a k-fold plan still continues a k-fold run."""
    cv = load_tool('cross_validate')
    plan_file = str(tmp_path / 'cv_plan.json')
    kfold = dict(folds=2, group_by=None, seed=0)
    fingerprint = dict(config='c', data='d')
    open_set = dict(kfold, leave_out_classes=1, repeats=2,
                    fingerprint=fingerprint)
    with pytest.raises(ValueError, match="'leave_out_classes': 1.*not .*"
                       "'leave_out_classes': None.*--fresh"):
        cv.check_plan(plan_file, open_set, kfold, fingerprint, {}, 30)
    with pytest.raises(ValueError, match="'leave_out_classes': None"):
        cv.check_plan(plan_file, dict(kfold, fingerprint=fingerprint),
                      dict(kfold, leave_out_classes=1, repeats=2),
                      fingerprint, {}, 30)
    cv.check_plan(plan_file, dict(kfold, fingerprint=fingerprint), kfold,
                  fingerprint, {}, 30)
    cv.check_plan(plan_file, open_set, dict(kfold, leave_out_classes=1,
                                            repeats=2), fingerprint, {}, 30)


def test_open_set_check_takes_either_novelty_head_and_imports_no_name():
    """--leave-out-classes runs the MLP head of rock_quickstart_dihedral.py
    too (a subclass, same novelty score); a plain head is one clear error,
    and a dotted name in a config is looked up, never imported."""
    from mmengine.config import Config
    open_set = load_tool('_open_set_cv')
    flags = load_tool('_config_flags')
    for name in ('rock_quickstart.py', 'rock_quickstart_dihedral.py'):
        open_set.check_open_set_config(
            Config.fromfile(osp.join(osp.dirname(QUICKSTART), name)))
    cfg = Config.fromfile(QUICKSTART)
    cfg.model.head.type = 'LinearClsHead'
    with pytest.raises(ValueError, match="OpenSetMLPClsHead .*got "
                       "'LinearClsHead'"):
        open_set.check_open_set_config(cfg)
    assert flags.has_open_set_head(dict(head=dict(
        type='mmpretrain.OpenSetMLPClsHead')))
    assert not flags.has_open_set_head(dict(head=dict(
        type='rock_plugin_probe_module.make_head')))
    assert 'rock_plugin_probe_module' not in __import__('sys').modules
    assert not flags.has_open_set_head(dict(head=None))
