"""K-fold cross-validation of a config: ``python tools/cross_validate.py
CONFIG --folds 5 [--group-by REGEX] [--seed N] [--tta] [train.py flags]``.

The training data is pooled and cut into K stratified, disjoint folds
(sklearn's ``StratifiedKFold``; ``StratifiedGroupKFold`` with ``--group-by``,
so that the images of one sample never straddle training and validation).
Fold ``k`` is a normal training run in ``<work_dir>/fold_<k>/`` on the
annotation files ``fold_<k>/train.txt`` / ``val.txt``; its final model (or
``--eval-checkpoint best``) then predicts its validation images, with and,
given ``--tta``, without test-time augmentation. A rerun skips finished
folds and resumes an interrupted one; ``cv_plan.json`` holds fingerprints of
the resolved config and of the data, so a rerun with others is refused
(``--fresh`` moves the earlier run into ``previous_runs/`` and starts over).
``<work_dir>`` ends up with
``cv_summary.csv/.json`` (per fold, mean and std of top-1, macro
precision/recall/F1 and per-class F1), ``oof_predictions.csv`` and the pooled
``oof_confusion_matrix.csv/.png`` (``*_tta.*`` likewise).

Several processes: ``python -m torch.distributed.run --nproc_per_node N
tools/cross_validate.py CONFIG --folds 5 --launcher pytorch``.

Open set, ``--leave-out-classes K --repeats R``: each repeat trains without
K classes drawn at random and scores how well the model flags their images
as unknown (``tools/_open_set_cv.py``; ``<work_dir>/repeat_<r>/``,
``open_set_cv.csv/.json``; default work dir ``<config name>_open_set_cv``).
"""
import argparse
import copy
import gc
import hashlib
import json
import os
import os.path as osp

from _common import (end_loader_workers, flag_hint, run, setup_env,
                     shipped_config)
from _config_flags import draw_seed, load_config, set_dist_backend

PLAN_FILE = 'cv_plan.json'
TRAINED_FILE = 'cv_trained.json'
RESULT_FILE = 'cv_result.json'
RAW_KEPT = 'raw_score_kept'  # cv_result.json: the predictions keep raw_score
OPEN_SET_REPEATS = 5  # --repeats' default
# train.py flags that would fight the fold split or the fold bookkeeping.
CONFLICTING = ('--split-validation', '--ratio', '--fold', '--resume',
               '--resume-from')
# Config settings that may differ between the runs of one cross-validation:
# where and how it runs, not what it computes. Left out of the fingerprint.
RERUN_KEYS = ('work_dir', 'launcher', 'resume', 'load_from',
              'experiment_name', 'log_level', 'env_cfg.dist_cfg')
RERUN_LEAVES = ('num_workers', 'persistent_workers', 'pin_memory',
                'prefetch_factor')
# The package's words for what this tool's (and train.py's) flags set; no
# --resume or --fresh here: a rerun resumes a fold by itself.
FLAG_HINTS = {
    'folds=': '--folds ',
    'group_by=': '--group-by ',
    'leave_out_classes=': '--leave-out-classes ',
    'repeats=': '--repeats ',
    'cfg.work_dir': '--work-dir',
    'skip_bad_images=True': '--skip-bad-images',
    'Set auto_scale_lr.enable=True': 'Pass --auto-scale-lr',
    'the config key ': '--cfg-options ',
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='K-fold cross-validation: every image is validated '
        'exactly once; mean ± std over folds. Flags not listed here go to '
        'tools/train.py (e.g. --device cpu, --data-root, --cfg-options).',
        epilog='A rerun with the same --work-dir skips finished folds and '
        'resumes an interrupted one; with another config or data it is '
        'refused (--fresh starts over).')
    parser.add_argument('config', type=shipped_config,
                        help='training config file path (or a shipped '
                        "config's name, e.g. rock_quickstart)")
    parser.add_argument('--folds', type=int, default=5,
                        help='number of folds (default 5)')
    parser.add_argument(
        '--group-by', metavar='REGEX',
        help="keep the images of one sample in one fold: a regular "
        "expression on the file name whose group 1 is the sample key (e.g. "
        r"'^(.*)_\d+\.jpg$'), or folder / folder:N (the file's folder, or "
        "the N-th folder above it)")
    parser.add_argument('--seed', type=int, default=None,
                        help='seed of the fold split and of training '
                        '(default: the config\'s, else drawn; stored)')
    parser.add_argument('--tta', action='store_true',
                        help='also evaluate every fold with test-time '
                        'augmentation (the config\'s tta_pipeline)')
    parser.add_argument('--eval-checkpoint', choices=['last', 'best'],
                        default='last',
                        help='model each fold is evaluated with: the final '
                        'one (default; unbiased) or the best by validation '
                        'accuracy (chosen on the same images: optimistic)')
    parser.add_argument('--work-dir', help='where the folds and the summary '
                        'go (default: work_dirs/<config name>_cv)')
    parser.add_argument('--fresh', action='store_true',
                        help='start over in a work dir that holds an earlier '
                        'cross-validation: its files move to <work dir>/'
                        'previous_runs/')
    parser.add_argument(
        '--leave-out-classes', type=int, metavar='K',
        help='open-set cross-validation: each repeat trains without K '
        'classes drawn at random, validates on fold r %% folds of the '
        'others, and scores how well the model flags every image of the '
        'left-out classes as unknown (default work dir: work_dirs/<config '
        'name>_open_set_cv)')
    parser.add_argument('--repeats', type=int, metavar='R',
                        help='repeats of --leave-out-classes (default '
                        f'{OPEN_SET_REPEATS})')
    args, train_argv = parser.parse_known_args(argv)
    for flag in train_argv:
        if flag.split('=')[0] in CONFLICTING:
            raise ValueError(f'{flag}: the folds decide the split and a '
                             'rerun resumes by itself; leave it out')
    if args.folds < 2:
        raise ValueError(f'--folds must be at least 2, got {args.folds}')
    check_open_set_args(args)
    # tools/train.py's flags, parsed by tools/train.py (tools/ is on the
    # path of a tool run as a script).
    import train as train_tool
    train_args = train_tool.parse_args([args.config, *train_argv])
    return args, train_args


def check_open_set_args(args):
    """``--leave-out-classes`` / ``--repeats``: sound, or one error."""
    if args.leave_out_classes is None:
        if args.repeats is not None:
            raise ValueError('--repeats needs --leave-out-classes K')
        return
    if args.repeats is None:
        args.repeats = OPEN_SET_REPEATS
    if args.leave_out_classes < 1 or args.repeats < 1:
        raise ValueError('--leave-out-classes and --repeats must be at '
                         'least 1')
    if args.tta:
        raise ValueError('--tta: not with --leave-out-classes (the novelty '
                         'score is of the plain model)')


def _pool(cfg):
    """All images of the training data (the config's split undone)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS
    from rock_plugin.datasets import RockDataset
    from rock_plugin.utils.registry_names import is_registered_subclass
    base = copy.deepcopy(cfg.train_dataloader.dataset)
    # scoped: a caller's (or a test's) default scope is left as it was
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        if not is_registered_subclass(DATASETS, base, RockDataset):
            raise ValueError('cross-validation needs train_dataloader.'
                             'dataset of type RockDataset, got '
                             f"{base.get('type')!r}")
        base.update(split=None, pipeline=[], test_mode=True,
                    lazy_init=False)
        dataset = DATASETS.build(base)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    classes = [str(c) for c in dataset.metainfo['classes']]
    return ([i['img_path'] for i in infos],
            [int(i['gt_label']) for i in infos], classes)


def _fold_dataset(base, ann_file, classes, pipeline, test_mode):
    ds = copy.deepcopy(base)
    for key in ('split', 'val_ratio', 'fold', 'split_seed', 'indices'):
        ds.pop(key, None)
    ds.update(ann_file=osp.abspath(ann_file), classes=list(classes),
              data_prefix='', pipeline=pipeline, test_mode=test_mode,
              skip_bad_images=False)  # the pool already left them out
    return ds


def _load_json(path):
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _json_default(value):
    # Classes and functions (new-style configs) by name: a repr may hold a
    # memory address, which would differ on every run.
    name = getattr(value, '__qualname__', None)
    if name is not None:
        return f'{getattr(value, "__module__", "")}.{name}'
    return repr(value)


def _flatten(node, prefix=''):
    if isinstance(node, dict) and node:
        for key in sorted(node, key=str):
            yield from _flatten(node[key], f'{prefix}{key}.')
    else:
        yield prefix[:-1], json.dumps(node, sort_keys=True,
                                      default=_json_default)


def resolved_config(cfg) -> dict:
    """The config a cross-validation computes with, after every flag and
    ``--cfg-options``: ``{dotted key: JSON value}``, lists as one value, the
    :data:`RERUN_KEYS` / :data:`RERUN_LEAVES` left out."""
    flat = {}
    for key, value in _flatten(cfg.to_dict()):
        if key.split('.')[-1] in RERUN_LEAVES or any(
                key == k or key.startswith(k + '.') for k in RERUN_KEYS):
            continue
        flat[key] = value
    return flat


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode('utf-8', 'surrogateescape')).hexdigest()


def data_fingerprint(paths, labels, classes) -> str:
    """sha256 of the pooled images: every absolute path (sorted) with its
    class and size in bytes."""
    rows = sorted((osp.abspath(p), classes[label])
                  for p, label in zip(paths, labels))
    return _sha256(''.join(f'{path}\t{name}\t{osp.getsize(path)}\n'
                           for path, name in rows))


def _config_changes(then: dict, now: dict) -> str:
    keys = sorted(k for k in set(then) | set(now)
                  if then.get(k) != now.get(k))

    def change(key):
        old, new = then.get(key, 'unset'), now.get(key, 'unset')
        if max(len(old), len(new)) <= 30:
            return f'{key} {old} then, {new} now'
        return key
    shown = '; '.join(change(k) for k in keys[:3])
    return shown + (f'; {len(keys) - 3} more' if len(keys) > 3 else '')


def check_plan(plan_file, plan, wanted, fingerprint, flat, num_images):
    """Refuse to continue ``plan`` with other flags, config or data: one
    line naming the plan file and what differs."""
    from rock_plugin.utils.text import printable
    work_dir = osp.dirname(plan_file)
    how = ('start over with --fresh (moves the earlier files into '
           f'{work_dir}/previous_runs/), or use another --work-dir')
    # A k-fold plan and an open-set one (--leave-out-classes) never mix.
    keys = [*wanted, *(k for k in ('leave_out_classes', 'repeats')
                       if k not in wanted and plan.get(k) is not None)]
    stored = {k: plan.get(k) for k in keys}
    wanted = {k: wanted.get(k) for k in keys}
    if stored != wanted:
        raise ValueError(
            f'{plan_file}: a cross-validation with {stored}, not {wanted}: '
            f'give the same flags to continue it, {how}')
    if 'fingerprint' not in plan:
        raise ValueError(
            f'{plan_file}: planned by an older version that stored no '
            'fingerprint of its config and data, so this run cannot be '
            f'checked against it: {how}')
    if plan['fingerprint']['config'] != fingerprint['config']:
        changes = printable(_config_changes(plan.get('resolved_config', {}),
                                            flat))
        raise ValueError(
            f'{plan_file}: planned with another config ({changes}): rerun '
            f'with the config it was planned with to continue it, {how}')
    if plan['fingerprint']['data'] != fingerprint['data']:
        then = plan.get('num_images')
        count = (f'{then} images then, {num_images} now' if then != num_images
                 else f'{num_images} images, but other files, sizes or '
                 'classes')
        raise ValueError(
            f'{plan_file}: planned on other data ({count}): continue it on '
            f'the data it was planned on, {how}')


def plan_on_rank0(make, backend, *args):
    """``make(*args)`` on rank 0, its result (or its error, raised on every
    rank: all must stop, not only rank 0) broadcast to the others."""
    from mmengine.dist import broadcast_object_list, is_main_process
    plan = [None, None]
    if is_main_process():
        try:
            plan[0] = make(*args)
        except Exception as exc:
            plan[1] = exc
    if backend:
        broadcast_object_list(plan)
    if plan[1] is not None:
        raise plan[1]
    return plan[0]


def make_plan(args, cfg, seed, work_dir):
    """Rank 0: pool the data, assign folds (or check the stored ones)."""
    from rock_plugin.utils.work_dir import prepare_fresh_run
    from rock_plugin.datasets.kfold import (assign_folds, group_keys,
                                            write_fold_files)
    from rock_plugin.utils.atomic_io import atomic_write_json
    paths, labels, classes = _pool(cfg)
    flat = resolved_config(cfg)
    fingerprint = dict(config=_sha256(json.dumps(flat, sort_keys=True)),
                       data=data_fingerprint(paths, labels, classes))
    plan_file = osp.join(work_dir, PLAN_FILE)
    plan = _load_json(plan_file)
    wanted = dict(folds=args.folds, group_by=args.group_by, seed=seed)
    if plan is not None and not args.fresh:
        check_plan(plan_file, plan, wanted, fingerprint, flat, len(paths))
        return plan
    groups = group_keys(paths, args.group_by) if args.group_by else None
    fold_ids = assign_folds(labels, args.folds, seed, groups, classes)
    if plan is not None:  # --fresh, and the new folds are sound
        prepare_fresh_run(work_dir, fresh=True, old=[plan_file])
    write_fold_files(work_dir, paths, labels, fold_ids, classes, groups)
    plan = dict(wanted, classes=classes, num_images=len(paths),
                config=osp.abspath(args.config), fingerprint=fingerprint,
                resolved_config=flat)
    atomic_write_json(plan_file, plan)
    return plan


def _fold_cfg(base_cfg, work_dir, k, classes):
    cfg = copy.deepcopy(base_cfg)
    fold_dir = osp.join(work_dir, f'fold_{k}')
    train_txt, val_txt = (osp.join(fold_dir, n)
                          for n in ('train.txt', 'val.txt'))
    base = base_cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = _fold_dataset(
        base, train_txt, classes, base.pipeline, False)
    if cfg.get('val_dataloader'):
        cfg.val_dataloader.dataset = _fold_dataset(
            base, val_txt, classes, cfg.val_dataloader.dataset.pipeline, True)
    cfg.test_dataloader.dataset = _fold_dataset(
        base, val_txt, classes, cfg.test_dataloader.dataset.pipeline, True)
    cfg.work_dir = fold_dir
    return cfg


def train_fold(cfg, k, folds, unit='fold'):
    """Train fold ``k`` (resuming when it has checkpoints); its checkpoints.
    ``unit``: what the log calls it (``'repeat'`` for the open-set mode)."""
    from mmengine.dist import barrier, is_main_process
    from mmengine.logging import print_log

    from rock_plugin.apis.train import train
    from rock_plugin.utils.work_dir import (find_resume_checkpoint,
                                            old_run_files)
    from rock_plugin.utils.atomic_io import atomic_write_json
    from rock_plugin.utils.text import printable
    fold_dir = cfg.work_dir
    trained = _load_json(osp.join(fold_dir, TRAINED_FILE))
    if trained is not None:
        return trained
    if old_run_files(fold_dir):
        cfg.resume = True
        cfg.load_from = find_resume_checkpoint(fold_dir)
    cfg.experiment_name = f'cv_{unit}{k}_train'
    print_log(f'cross-validation: {unit} {k + 1} of {folds}'
              + (f', resuming from {printable(cfg.load_from)}'
                 if cfg.get('resume') else ''), logger='current')
    runner = train(cfg)
    print_log(f'cross-validation: {unit} {k + 1} of {folds} trained on '
              f'{len(runner.train_dataloader.dataset)} images, world size '
              f'{runner.world_size}', logger='current')
    end_loader_workers(runner)
    del runner
    gc.collect()  # ends the dataloader workers before the next runner
    last = open(osp.join(fold_dir, 'last_checkpoint')).read().strip()
    best = osp.join(fold_dir, 'best.pth')  # AtomicCheckpointHook's name
    trained = dict(last=last, best=best if osp.isfile(best) else None)
    if is_main_process():
        atomic_write_json(osp.join(fold_dir, TRAINED_FILE), trained)
    barrier()
    return trained


def evaluate_fold(cfg, k, checkpoint, tta):
    """Predictions of one fold's validation images (rank 0; else [])."""
    from rock_plugin.apis.train import build_runner
    from rock_plugin.apis.tta import tta_config
    from rock_plugin.evaluation import PredictionCollector
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    variant = 'tta' if tta else 'plain'
    cfg.work_dir = osp.join(cfg.work_dir, f'eval_{variant}')
    cfg.experiment_name = f'cv_fold{k}_eval_{variant}'
    cfg.test_evaluator = [dict(type='PredictionCollector')]
    if tta:
        cfg = tta_config(cfg)
    runner = build_runner(cfg)
    runner.test()
    collector = next(m for m in runner.test_evaluator.metrics
                     if isinstance(m, PredictionCollector))
    # raw_score (T = 1): the summary refits the temperature apart from the
    # images it scales (ece_crossfit)
    predictions = [{key: p[key] for key in
                    ('img_path', 'gt_label', 'pred_score', 'raw_score')
                    if key in p} for p in collector.predictions]
    del runner
    gc.collect()
    return predictions


def summarize(work_dir, plan, results, variants):
    from mmengine.logging import print_log
    from rock_plugin.evaluation.cross_validation import (format_cv_table,
                                                         save_cv_results,
                                                         summarize_folds)
    from rock_plugin.utils.text import printable
    from rock_plugin.visualization import plot_confusion_matrix
    lines, summaries = [], {}
    for variant in variants:
        preds = {k: r[variant] for k, r in results.items()}
        summary = summarize_folds(preds, plan['classes'])
        summary.update(variant=variant, folds_k=plan['folds'],
                       seed=plan['seed'], group_by=plan['group_by'])
        title = 'Cross-validation' + (' with TTA' if variant == 'tta'
                                      else '')
        suffix = '_tta' if variant == 'tta' else ''
        files = save_cv_results(work_dir, summary, preds, suffix)
        plot_confusion_matrix(
            summary['pooled']['confusion'], summary['classes'],
            osp.join(work_dir, f'oof_confusion_matrix{suffix}.png'),
            title=f'{title}, out of fold')
        print_log('\n' + format_cv_table(summary, title), logger='current')
        m, s = summary['mean'], summary['std']
        pooled = summary['pooled']
        ece = f"ECE {pooled['ece']:.2f}" + (
            f" (T fitted apart: {pooled['ece_crossfit']:.2f})"
            if 'ece_crossfit' in pooled else '')
        lines.append(f"{title}: top-1 {m['top1']:.2f} ± {s['top1']:.2f}, "
                     f"macro F1 {m['f1']:.2f} ± {s['f1']:.2f} "
                     f"({plan['folds']} folds, {summary['num_images']} "
                     f'images; mean ± std over folds, percent); pooled '
                     f"{ece} -> {osp.basename(files['summary_csv'])}")
        summaries[variant] = summary
    print_log('\n'.join(lines + [f'results in {printable(work_dir)}']),
              logger='current')
    return summaries


def main(argv=None):
    args, train_args = parse_args(argv)
    with flag_hint(FLAG_HINTS):
        return _cross_validate(args, train_args)


def _cross_validate(args, train_args):
    setup_env(train_args)
    import rock_plugin  # noqa: F401  (registries)
    from mmengine.dist import barrier, is_main_process, sync_random_seed

    import train as train_tool
    from rock_plugin.engine.distributed import init_distributed
    from rock_plugin.utils.atomic_io import atomic_write_json
    from rock_plugin.utils.progress import ProgressBar
    from rock_plugin.utils.text import printable
    backend = init_distributed(train_args.launcher, train_args.device)
    work_dir = args.work_dir or train_tool.default_work_dir(args.config) + (
        '_open_set_cv' if args.leave_out_classes else '_cv')
    stored = {} if args.fresh else \
        _load_json(osp.join(work_dir, PLAN_FILE)) or {}
    seed = args.seed if args.seed is not None else stored.get('seed')
    cfg = load_config(args.config, train_args.cfg_options)
    if seed is None:
        seed = cfg.get('randomness', {}).get('seed')
    if seed is None:
        seed = sync_random_seed() if backend else draw_seed()
    train_args.seed = seed
    train_args.work_dir = work_dir
    cfg = train_tool.merge_args(cfg, train_args)
    set_dist_backend(cfg, backend)
    if args.tta:
        from rock_plugin.apis.tta import check_tta_pipeline
        check_tta_pipeline(cfg)  # fail now, not after training
    os.makedirs(work_dir, exist_ok=True)
    if args.leave_out_classes:
        from _open_set_cv import cross_validate_open_set
        return cross_validate_open_set(args, cfg, seed, work_dir, backend)
    plan = plan_on_rank0(make_plan, backend, args, cfg, seed, work_dir)
    variants = ['plain'] + (['tta'] if args.tta else [])
    results, todo = {}, []
    for k in range(args.folds):
        fold_cfg = _fold_cfg(cfg, work_dir, k, plan['classes'])
        result_file = osp.join(fold_cfg.work_dir, RESULT_FILE)
        result = _load_json(result_file) or {}
        if result.get('eval_checkpoint') != args.eval_checkpoint:
            result = dict(fold=k, eval_checkpoint=args.eval_checkpoint)
        # a fold evaluated before raw scores were kept is predicted again
        # from its checkpoint (not retrained), for ece_crossfit
        missing = [v for v in variants if v not in result
                   or result.get(RAW_KEPT) is not True]
        if all(v in result for v in variants) and not osp.isfile(
                result.get('checkpoint') or ''):
            missing = []  # its checkpoint is gone: keep what it scored
        if missing:
            todo.append((k, fold_cfg, result_file, result, missing))
        else:
            print(f'fold {k}: done, skipped ({printable(result_file)})',
                  flush=True)
            results[k] = result
    # the folds done before count as done, not in the ETA's rate
    with ProgressBar('cross-validation folds', total=args.folds,
                     completed=args.folds - len(todo),
                     transient=False) as bar:
        for k, fold_cfg, result_file, result, missing in todo:
            trained = train_fold(fold_cfg, k, args.folds)
            checkpoint = trained[args.eval_checkpoint]
            if checkpoint is None:
                raise FileNotFoundError(
                    f'{fold_cfg.work_dir}: no best checkpoint (validation '
                    'was off?); use --eval-checkpoint last')
            result['checkpoint'] = checkpoint
            result[RAW_KEPT] = True
            for variant in missing:
                result[variant] = evaluate_fold(fold_cfg, k, checkpoint,
                                                variant == 'tta')
            if is_main_process():
                atomic_write_json(result_file, result)
            barrier()
            results[k] = result
            bar.update(advance=1)
    if is_main_process():
        return summarize(work_dir, plan, results, variants)
    return None


if __name__ == '__main__':
    run(main)
