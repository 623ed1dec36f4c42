"""Open-set cross-validation, ``tools/cross_validate.py CONFIG
--leave-out-classes K --repeats R``: can the model say "unknown" for a
class it never saw?

The pooled data is cut into ``--folds`` stratified folds once (as the k-fold
mode). Repeat ``r`` leaves ``K`` classes out, drawn at random from the seed
(no set of classes twice until all have come): they vanish from its training
data, its class list and its head. It trains, in
``<work_dir>/repeat_<r>/``, on the known classes' images outside fold
``r % folds`` and validates on those inside it (where
``OpenSetCalibrationHook`` fits the "unknown" threshold); then its model
scores those validation images (known) and every image of the left-out
classes (unknown). Per repeat: AUROC of the novelty score, unknowns and
knowns flagged at the threshold, known-class top-1, and the AUROC of
``1 - max pred_score`` beside it; mean ± std over repeats in
``open_set_cv.csv/.json``, each image in ``open_set_predictions.csv``.
Reruns skip finished repeats and resume an interrupted one (``cv_plan.json``
as the k-fold mode).
"""
import copy
import gc
import json
import os.path as osp

import cross_validate as cv
from _config_flags import has_open_set_head, set_classes_from_data

DEFAULT_REPEATS = 5
RESULT_KEY = 'open_set'


def check_open_set_config(cfg) -> None:
    """The model must be able to say "unknown": an ``OpenSetLinearClsHead``
    (or ``OpenSetMLPClsHead``) that ``OpenSetCalibrationHook`` fits (the
    shipped configs)."""
    from rock_plugin.utils.registry_names import type_name
    if not has_open_set_head(cfg.model):
        head = type_name(cfg.model.get('head'))
        raise ValueError(
            f'--leave-out-classes needs model.head of type '
            f"OpenSetLinearClsHead or OpenSetMLPClsHead (a novelty score), "
            f'got {head!r}: use a shipped config, or set it in yours')
    if not any(type_name(h) == 'OpenSetCalibrationHook'
               for h in cfg.get('custom_hooks') or []):
        raise ValueError(
            '--leave-out-classes needs OpenSetCalibrationHook in '
            'custom_hooks (it fits the feature bank and the threshold)')


def make_open_set_plan(args, cfg, seed, work_dir):
    """Rank 0: pool the data, draw the classes left out, assign folds and
    write each repeat's files (or check the stored plan)."""
    from rock_plugin.datasets.kfold import assign_folds, group_keys
    from rock_plugin.datasets.leave_out import (draw_left_out_classes,
                                                write_leave_out_files)
    from rock_plugin.utils.atomic_io import atomic_write_json
    from rock_plugin.utils.work_dir import prepare_fresh_run
    paths, labels, classes = cv._pool(cfg)
    flat = cv.resolved_config(cfg)
    fingerprint = dict(config=cv._sha256(json.dumps(flat, sort_keys=True)),
                       data=cv.data_fingerprint(paths, labels, classes))
    plan_file = osp.join(work_dir, cv.PLAN_FILE)
    plan = cv._load_json(plan_file)
    wanted = dict(folds=args.folds, group_by=args.group_by, seed=seed,
                  leave_out_classes=args.leave_out_classes,
                  repeats=args.repeats)
    if plan is not None and not args.fresh:
        cv.check_plan(plan_file, plan, wanted, fingerprint, flat, len(paths))
        return plan
    draws = draw_left_out_classes(len(classes), args.leave_out_classes,
                                  args.repeats, seed)
    groups = group_keys(paths, args.group_by) if args.group_by else None
    fold_ids = assign_folds(labels, args.folds, seed, groups, classes)
    if plan is not None:  # --fresh, and the new plan is sound
        prepare_fresh_run(work_dir, fresh=True, old=[plan_file])
    repeats = write_leave_out_files(work_dir, paths, labels, fold_ids,
                                    classes, draws, groups)
    plan = dict(wanted, classes=classes, num_images=len(paths),
                config=osp.abspath(args.config), fingerprint=fingerprint,
                resolved_config=flat, repeat_plans=repeats)
    atomic_write_json(plan_file, plan)
    return plan


def repeat_cfg(base_cfg, work_dir, repeat):
    """The training config of one repeat: its files, the known classes
    alone, the head and data preprocessor sized to them."""
    cfg = copy.deepcopy(base_cfg)
    folder = osp.join(work_dir, f"repeat_{repeat['repeat']}")
    train_txt, val_txt = (osp.join(folder, n) for n in ('train.txt',
                                                        'val.txt'))
    base, known = base_cfg.train_dataloader.dataset, repeat['known']
    cfg.train_dataloader.dataset = cv._fold_dataset(
        base, train_txt, known, base.pipeline, False)
    if cfg.get('val_dataloader'):
        cfg.val_dataloader.dataset = cv._fold_dataset(
            base, val_txt, known, cfg.val_dataloader.dataset.pipeline, True)
    cfg.test_dataloader.dataset = cv._fold_dataset(
        base, val_txt, known, cfg.test_dataloader.dataset.pipeline, True)
    cfg.work_dir = folder
    # Always the known count, even where --cfg-options set num_classes.
    set_classes_from_data(cfg)
    return cfg


def evaluate_repeat(cfg, repeat, checkpoint):
    """Predictions (with novelty) of ``open_set.txt``, on rank 0 (else []),
    and the head's threshold."""
    from rock_plugin.apis.train import build_runner
    from rock_plugin.evaluation.metrics import PredictionCollector
    from rock_plugin.utils.model_wrappers import bare_model
    cfg = copy.deepcopy(cfg)
    cfg.load_from, cfg.resume = checkpoint, False
    cfg.work_dir = osp.join(cfg.work_dir, 'eval_open_set')
    cfg.experiment_name = f"cv_repeat{repeat['repeat']}_eval_open_set"
    test = cfg.test_dataloader.dataset
    cfg.test_dataloader.dataset = cv._fold_dataset(
        test, osp.join(osp.dirname(cfg.work_dir), 'open_set.txt'),
        [*repeat['known'], *repeat['left_out']], test.pipeline, True)
    cfg.test_evaluator = [dict(type='PredictionCollector')]
    runner = build_runner(cfg)
    runner.test()
    model = bare_model(runner.model)
    if not model.head.has_bank:
        raise ValueError(f'{checkpoint}: the model has no feature bank '
                         '(OpenSetCalibrationHook did not fit it)')
    threshold = model.head.threshold
    collector = next(m for m in runner.test_evaluator.metrics
                     if isinstance(m, PredictionCollector))
    predictions = [{k: p.get(k) for k in ('img_path', 'gt_label',
                                          'pred_score', 'novelty',
                                          'unknown')}
                   for p in collector.predictions]
    del runner
    gc.collect()
    return predictions, threshold


def summarize_open_set_cv(work_dir, plan, results):
    """Rank 0: the table, ``open_set_cv.csv/.json`` and the predictions."""
    from mmengine.logging import print_log

    from rock_plugin.evaluation.open_set_cv import (format_open_set_table,
                                                    open_set_metrics,
                                                    save_open_set_results,
                                                    summarize_open_set)
    from rock_plugin.utils.text import printable
    rows = []
    for r, result in sorted(results.items()):
        repeat = plan['repeat_plans'][r]
        rows.append(dict(
            repeat=r, left_out=repeat['left_out'], known=repeat['known'],
            val_fold=repeat['val_fold'], **open_set_metrics(
                result[RESULT_KEY], len(repeat['known']),
                result['threshold'])))
    summary = summarize_open_set(rows)
    summary.update(
        leave_out_classes=plan['leave_out_classes'], folds_k=plan['folds'],
        seed=plan['seed'], group_by=plan['group_by'],
        classes=plan['classes'], eval_checkpoint=results[0].get(
            'eval_checkpoint'),
        known_images="each repeat's known classes, validation fold "
        '(the threshold is fitted on them)',
        unknown_images="every image of each repeat's left-out classes")
    files = save_open_set_results(work_dir, summary,
                                  {r: v[RESULT_KEY]
                                   for r, v in results.items()})
    title = (f"Open-set cross-validation: {plan['leave_out_classes']} "
             f"class(es) left out, {plan['repeats']} repeats")
    m, s = summary['mean'], summary['std']
    print_log('\n' + format_open_set_table(summary, title) + '\n' +
              f"Open-set: AUROC novelty {m['auroc']:.3f} ± "
              f"{s['auroc']:.3f} (max-softmax {m['msp_auroc']:.3f} ± "
              f"{s['msp_auroc']:.3f}), unknowns flagged "
              f"{m['unknown_flagged']:.1f} ± {s['unknown_flagged']:.1f} %, "
              f"knowns flagged {m['known_flagged']:.1f} ± "
              f"{s['known_flagged']:.1f} %, known top-1 {m['top1']:.1f} ± "
              f"{s['top1']:.1f} % (mean ± std over {plan['repeats']} "
              f"repeats) -> {osp.basename(files['summary_csv'])}\n"
              f'results in {printable(work_dir)}', logger='current')
    return summary


def cross_validate_open_set(args, cfg, seed, work_dir, backend):
    """The open-set mode of ``tools/cross_validate.py`` (every rank)."""
    from mmengine.dist import barrier, is_main_process

    from rock_plugin.utils.atomic_io import atomic_write_json
    from rock_plugin.utils.progress import track
    from rock_plugin.utils.text import printable
    check_open_set_config(cfg)
    plan = cv.plan_on_rank0(make_open_set_plan, backend, args, cfg, seed,
                            work_dir)
    results = {}
    for r in track(range(args.repeats), 'open-set repeats',
                   transient=False):
        repeat = plan['repeat_plans'][r]
        rcfg = repeat_cfg(cfg, work_dir, repeat)
        result_file = osp.join(rcfg.work_dir, cv.RESULT_FILE)
        result = cv._load_json(result_file) or {}
        if result.get('eval_checkpoint') == args.eval_checkpoint and \
                RESULT_KEY in result:
            print(f'repeat {r}: done, skipped ({printable(result_file)})',
                  flush=True)
            results[r] = result
            continue
        trained = cv.train_fold(rcfg, r, args.repeats, unit='repeat')
        checkpoint = trained[args.eval_checkpoint]
        if checkpoint is None:
            raise FileNotFoundError(
                f'{rcfg.work_dir}: no best checkpoint (validation was '
                'off?); use --eval-checkpoint last')
        predictions, threshold = evaluate_repeat(rcfg, repeat, checkpoint)
        result = dict(repeat=r, left_out=repeat['left_out'],
                      eval_checkpoint=args.eval_checkpoint,
                      checkpoint=checkpoint, threshold=threshold,
                      **{RESULT_KEY: predictions})
        if is_main_process():
            atomic_write_json(result_file, result)
        barrier()
        results[r] = result
    if is_main_process():
        return summarize_open_set_cv(work_dir, plan, results)
    return None
