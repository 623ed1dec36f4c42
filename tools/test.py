"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``.

Prints the per-class table and writes ``per_class.csv``,
``confusion_matrix.csv/.png``, ``prediction_results.csv`` and
``summary.json`` to ``<work dir>/test_results`` (``--results-dir``);
``--group-by [REGEX]`` adds ``per_slide.csv`` and the slide accuracy;
``--unknown DIR`` the open-set report (``open_set.json``,
``novelty_scores.csv``), ``--embedding`` ``embedding.png``.
mmpretrain's shape: :func:`parse_args` -> :func:`merge_args` ->
:func:`rock_plugin.apis.evaluate.evaluate`; ``--help`` lists the flags.
Several processes: ``bash tools/dist_test.sh CONFIG CHECKPOINT N``, on Slurm
``tools/slurm_test.sh``.
"""
import argparse
import copy
import os.path as osp

from _common import (add_common_args, add_data_args, add_model_args,
                     check_files, check_output_not_input, check_split_args,
                     default_work_dir, flag_hint, run, setup_env)
from _config_flags import (cfg_options_guard, has_open_set_head, load_config,
                           set_data_options, set_dist_backend, set_seed,
                           set_split_validation)

# The package's words for what this tool's flags set (_common.flag_hint).
FLAG_HINTS = {
    'skip_bad_images=True': '--skip-bad-images',
    'the config key ': '--cfg-options ',
    'group_by=': '--group-by ',
}


def parse_args(argv=None) -> argparse.Namespace:
    """The flags: mmpretrain's ``tools/test.py`` plus ours."""
    parser = argparse.ArgumentParser(
        description='Evaluate a rock classifier checkpoint on the test set: '
        'per-class table, confusion matrix and per-image predictions.')
    add_model_args(parser)
    parser.add_argument('--work-dir', help='where the run log goes (default: '
                        'work_dirs/<config name>)')
    parser.add_argument('--results-dir', help='where the result files go '
                        '(default: <work dir>/test_results)')
    parser.add_argument('--out', help='also dump per-image predictions (or '
                        'metrics with --out-item metrics) to this .json file')
    parser.add_argument('--out-item', choices=['pred', 'metrics'],
                        default='pred', help='what --out holds')
    parser.add_argument('--show-dir', help='save test images annotated with '
                        'predicted and true class names here (not inside '
                        'the data)')
    parser.add_argument('--interval', type=int, default=1,
                        help='with --show-dir: save every N-th image')
    parser.add_argument('--show-wrong-only', action='store_true',
                        help='with --show-dir: only misclassified images')
    add_data_args(
        parser, split_help='evaluate on the validation fold carved out of '
        'the training annotations (as in training)',
        seed_help='seed of the split (default: the seed stored in the '
        "checkpoint, i.e. the training run's)")
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: average the scores of '
                        "the config's tta_pipeline views (flips and 90-degree "
                        'rotations)')
    parser.add_argument('--mistakes', type=int, default=16,
                        help='most confident mistakes on mistakes.jpg '
                        '(default 16; 0: no sheet)')
    parser.add_argument(
        '--group-by', nargs='?', const='', metavar='REGEX',
        help='also pool the images of each slide (sample): per_slide.csv '
        'and slide accuracy. REGEX is searched in the file name, group 1 '
        'the slide, or folder / folder:N, as in cross_validate.py; alone: '
        '<name><number>_<tile> names (Chert23_11.jpg -> Chert23)')
    parser.add_argument('--pool', choices=['mean', 'logmean'],
                        help='with --group-by: pool the mean of the '
                        'probabilities or of the log-probabilities '
                        '(default logmean)')
    parser.add_argument('--unknown', metavar='DIR',
                        help='a folder of images of rocks of no trained '
                        'class (any layout): how well the novelty score '
                        'tells them from the test images (AUROC, shares '
                        'flagged unknown): open_set.json, novelty_scores.csv')
    parser.add_argument('--unknown-threshold', type=float, metavar='X',
                        help='novelty above X is "unknown" (default: the '
                        'threshold fitted in training)')
    parser.add_argument('--embedding', nargs='?', const='tsne',
                        choices=['tsne', 'umap'],
                        help='embedding.png: a t-SNE (or UMAP, with '
                        'umap-learn installed) map of the pooled features of '
                        'the test images, and of the --unknown ones')
    add_common_args(parser)
    args = parser.parse_args(argv)
    check_split_args(args)
    check_files((args.config, 'config file'))
    if not osp.isfile(osp.expanduser(args.checkpoint)):
        raise FileNotFoundError(
            f'{args.checkpoint}: checkpoint not found (give a .pth file, e.g. '
            'work_dirs/rock_b4/best.pth)')
    if args.out and not args.out.lower().endswith('.json'):
        raise ValueError(f'--out {args.out}: use a .json file (pickle files '
                         'can run code when loaded, so none are written)')
    if args.interval < 1:
        raise ValueError(f'--interval must be at least 1, got {args.interval}')
    if args.pool and args.group_by is None:
        raise ValueError('--pool pools the images of a slide: give '
                         '--group-by [REGEX] too')
    if args.tta and (args.unknown or args.embedding):
        # TTA averages the scores only: no novelty, no features
        raise ValueError('--unknown and --embedding score the model '
                         'without test-time augmentation: leave out --tta')
    return args


def merge_args(cfg, args: argparse.Namespace, meta: dict):
    """Apply the flags to the config (``--cfg-options`` already merged).

    ``--split-validation --ratio --fold --seed`` carve exactly the fold a
    training run validated on; the split seed defaults to the one stored in
    the checkpoint (``meta``).

    Args:
        cfg (Config): From :func:`_config_flags.load_config`.
        args (argparse.Namespace): From :func:`parse_args`.
        meta (dict): The checkpoint's ``meta``.

    Returns:
        Config: Ready for :func:`rock_plugin.apis.evaluate.evaluate`.
    """
    seed = args.seed if args.seed is not None else meta.get('seed')
    if seed is None:
        seed = cfg.get('randomness', {}).get('seed')
        test_ds = cfg.get('test_dataloader', {}).get('dataset', {})
        if seed is None and (args.split_validation or
                             test_ds.get('split') is not None):
            # A random seed would pick a random fold: mostly training images.
            raise ValueError(
                'the test set is a fold of the training data, but the '
                'checkpoint stores no seed: pass --seed (and --fold/--ratio) '
                'as used in training')
    if cfg.get('test_dataloader') is None:
        raise ValueError(f'{args.config}: the config has no test_dataloader')
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or \
        default_work_dir(args.config)
    set_data_options(cfg, args.data_root, args.skip_bad_images)
    seed = set_seed(cfg, seed)
    if args.split_validation:
        set_split_validation(cfg, args.ratio, args.fold, seed)
        test_ds = copy.deepcopy(cfg.val_dataloader.dataset)
        test_ds.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        cfg.test_dataloader.dataset = test_ds
    set_open_set_options(cfg, args)
    if args.tta:
        from rock_plugin.apis.tta import tta_config
        tta_config(cfg)
    return set_test_outputs(cfg, args)


def set_open_set_options(cfg, args: argparse.Namespace):
    """``--unknown-threshold X`` (``model.head.unknown_threshold``) and
    ``--embedding`` (``model.head.keep_features``); these and ``--unknown``
    need an ``OpenSetLinearClsHead`` (a plain head: one clear error)."""
    flags = [flag for flag, given in (
        ('--unknown', args.unknown),
        ('--unknown-threshold', args.unknown_threshold is not None),
        ('--embedding', args.embedding)) if given]
    if not flags:
        return cfg
    head = cfg.model.get('head') or {}
    if not has_open_set_head(cfg.model):
        raise ValueError(
            f'{args.checkpoint}: the model has no feature bank for '
            f'{" / ".join(flags)}: its head is {head.get("type")} (trained '
            'before open-set support); train again with the shipped '
            'configs (OpenSetLinearClsHead)')
    if args.unknown_threshold is not None:
        cfg.model.head.unknown_threshold = args.unknown_threshold
    if args.embedding:
        cfg.model.head.keep_features = True
    return cfg


# ClassReportMetric's registered names (RockMetric: the earlier one).
CLASS_REPORT_METRICS = ('ClassReportMetric', 'mmpretrain.ClassReportMetric',
                        'RockMetric', 'mmpretrain.RockMetric')
TEST_OUTPUT_HOOKS = ('TestResultsHook', 'DumpResultsHook',
                     'PredictionVisualizationHook', 'SlideResultsHook',
                     'OpenSetTestHook')


def _evaluator_list(evaluator) -> list:
    if evaluator is None:
        return []
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    return list(evaluator) if isinstance(evaluator, (list, tuple)) \
        else [evaluator]


def set_test_outputs(cfg, args: argparse.Namespace):
    """What the test run writes, as mmpretrain's ``tools/test.py`` adds
    ``DumpResults`` and the ``VisualizationHook``: a ``PredictionCollector``
    for the per-image results, ``TestResultsHook`` (``--results-dir``,
    ``--mistakes``; it prints the per-class table, so the metric does not),
    ``DumpResultsHook`` (``--out``, ``--out-item``) and
    ``PredictionVisualizationHook`` (``--show-dir``, ``--interval``,
    ``--show-wrong-only``), ``SlideResultsHook`` (``--group-by``,
    ``--pool``), ``OpenSetTestHook`` (``--unknown``, ``--embedding``).

    Args:
        cfg (Config): ``work_dir`` set.
        args (argparse.Namespace): From :func:`parse_args`.

    Returns:
        Config: ``cfg``, edited.
    """
    evaluators = [copy.deepcopy(m) for m in
                  _evaluator_list(cfg.get('test_evaluator'))]
    for metric in evaluators:
        if metric.get('type') in CLASS_REPORT_METRICS:
            metric['log_table'] = False
    cfg.test_evaluator = evaluators + [dict(type='PredictionCollector')]
    hooks = [dict(type='TestResultsHook', config=cfg.filename,
                  results_dir=args.results_dir or
                  osp.join(cfg.work_dir, 'test_results'),
                  mistakes=args.mistakes)]
    if args.out:
        hooks.append(dict(type='DumpResultsHook', out_file=args.out,
                          out_item=args.out_item))
    if args.show_dir:
        hooks.append(dict(type='PredictionVisualizationHook',
                          out_dir=args.show_dir, interval=args.interval,
                          wrong_only=args.show_wrong_only))
    if args.group_by is not None:  # '' (the flag alone): the default
        hooks.append(dict(type='SlideResultsHook',
                          group_by=args.group_by or None,
                          pool=args.pool,
                          results_dir=hooks[0]['results_dir']))
    if getattr(args, 'unknown', None) or getattr(args, 'embedding', None):
        hooks.append(dict(type='OpenSetTestHook', unknown_dir=args.unknown,
                          embedding=args.embedding,
                          results_dir=hooks[0]['results_dir']))
    # The flags decide: a config saved by a test run names these already.
    kept = [h for h in cfg.get('custom_hooks') or []
            if not isinstance(h, dict) or str(h.get('type')).rsplit(
                '.', 1)[-1] not in TEST_OUTPUT_HOOKS]
    cfg.custom_hooks = kept + hooks
    return cfg


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_env(args)
    import rock_plugin  # noqa: F401  (registries)
    import torch.distributed as dist

    from rock_plugin.apis.evaluate import evaluate, read_checkpoint_meta
    from rock_plugin.apis.train import setup_distributed
    cfg = load_config(args.config, args.cfg_options)
    own_group = dist.is_available() and not dist.is_initialized()
    backend = setup_distributed(
        args.launcher, args.device, cfg.get('env_cfg', {}).get('dist_cfg'))
    try:
        meta = read_checkpoint_meta(args.checkpoint)
        cfg = merge_args(cfg, args, meta)
        # Annotated copies in the data tree would be read as test (or
        # training) images next time.
        check_output_not_input(
            args.show_dir, [cfg.test_dataloader.dataset.get('data_root'),
                            args.config, args.checkpoint], '--show-dir')
        set_dist_backend(cfg, backend)
        with cfg_options_guard(args.cfg_options), flag_hint(FLAG_HINTS):
            return evaluate(cfg, args.checkpoint, meta=meta)
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == '__main__':
    run(main)
