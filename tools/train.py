"""Train a rock classifier: ``python tools/train.py configs/rock_b4.py``.

mmpretrain's shape: :func:`parse_args` -> :func:`merge_args` (flags into the
config, with the edits of ``_config_flags``) ->
:func:`rock_plugin.apis.train.train` (lock the work dir, build the runner,
train). ``--help`` lists the flags; several processes:
``bash tools/dist_train.sh CONFIG N``, on Slurm ``tools/slurm_train.sh``.
"""
import argparse

from _common import (add_common_args, add_data_args, check_split_args,
                     default_work_dir, flag_hint, run, setup_env,
                     shipped_config)
from _config_flags import (cfg_options_guard, fill_schedule_end, load_config,
                           set_amp, set_balanced_sampler, set_class_weight,
                           set_classes_from_data, set_data_options,
                           set_dist_backend,
                           set_early_stopping, set_frozen_stages,
                           set_resume, set_seed, set_split_validation)

# The package's words for what this tool's flags set (_common.flag_hint).
FLAG_HINTS = {
    'cfg.work_dir': '--work-dir',
    'cfg.resume=True': '--resume',
    'fresh=True': '--fresh',
    'skip_bad_images=True': '--skip-bad-images',
    'Set auto_scale_lr.enable=True': 'Pass --auto-scale-lr',
    'the config key ': '--cfg-options ',
}


def parse_args(argv=None) -> argparse.Namespace:
    """The flags: mmpretrain's ``tools/train.py`` plus the original's."""
    parser = argparse.ArgumentParser(
        description='Train a rock classifier (MMEngine/MMPretrain plugin).')
    parser.add_argument('config', type=shipped_config,
                        help='train config file path (or a shipped '
                        "config's name, e.g. rock_quickstart)")
    parser.add_argument('--work-dir', help='where logs, history, curves and '
                        'checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument(
        '--resume', '--resume-from', dest='resume', nargs='?', type=str,
        const='auto',
        help='continue a run: with a path, from that checkpoint; without, '
        'from the latest checkpoint in the work dir (--resume-from is the '
        "original's name)")
    for flag, text in (
            ('--fresh', 'start over in a work dir that holds an earlier run: '
             'its files move to <work dir>/previous_runs/'),
            ('--amp', 'mixed precision (float16 on CUDA, bfloat16 autocast '
             'on CPU)'),
            ('--no-validate', 'do not validate during training'),
            ('--auto-scale-lr', 'scale the lr by the real batch size'),
            ('--deterministic', 'deterministic algorithms (cuDNN, torch)')):
        parser.add_argument(flag, action='store_true', help=text)
    add_data_args(
        parser, split_help='validate on a stratified fold of the training '
        'annotations instead of the test set',
        seed_help="random seed (default: the config's, else random, "
        'broadcast from rank 0; logged and stored in checkpoints)')
    parser.add_argument('--patience', type=int, default=None,
                        help='stop when the selection metric (accuracy/top1) '
                        'has not improved for N validations')
    parser.add_argument('--class-weight', choices=['auto'], default=None,
                        help='auto: weight the loss by inverse class '
                        'frequency of the training split (logged)')
    parser.add_argument('--balanced-sampler', action='store_true',
                        help='draw every class about equally often')
    parser.add_argument('--frozen-stages', type=int, default=None,
                        metavar='N', help='fine-tune: freeze the backbone '
                        'stem and stages <= N only, train the rest at lr x '
                        '0.1 (Lite: -1 to 7, B4: 0 to 6; the last: all '
                        'frozen)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    check_split_args(args)
    if args.fresh and args.resume:
        raise ValueError('--fresh starts over and --resume continues: give '
                         'one of them')
    return args


def merge_args(cfg, args: argparse.Namespace):
    """Apply the flags to the config (``--cfg-options`` already merged).

    Args:
        cfg (Config): From :func:`_config_flags.load_config`.
        args (argparse.Namespace): From :func:`parse_args`.

    Returns:
        Config: Ready for :func:`rock_plugin.apis.train.train`.
    """
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    set_data_options(cfg, args.data_root, args.skip_bad_images)
    set_classes_from_data(cfg, args.cfg_options)
    seed = set_seed(cfg, args.seed, args.deterministic)
    if args.split_validation:
        set_split_validation(cfg, args.ratio, args.fold, seed)
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.amp:
        set_amp(cfg, args.device)
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', dict(base_batch_size=256))
        cfg.auto_scale_lr.enable = True
    if args.patience is not None:
        set_early_stopping(cfg, args.patience)
    set_class_weight(cfg, args.class_weight)
    if args.balanced_sampler:
        set_balanced_sampler(cfg)
    if args.frozen_stages is not None:
        set_frozen_stages(cfg, args.frozen_stages)
    fill_schedule_end(cfg)
    set_resume(cfg, args.resume)
    return cfg


def build_config(args: argparse.Namespace):
    """The config of a run: the file, ``--cfg-options``, then the flags."""
    return merge_args(load_config(args.config, args.cfg_options), args)


def main(argv=None):
    args = parse_args(argv)
    with flag_hint(FLAG_HINTS):
        return _train(args)


def _train(args: argparse.Namespace):
    setup_env(args)
    import rock_plugin  # noqa: F401  (registries)
    from mmengine.dist import sync_random_seed

    from rock_plugin.apis.train import setup_distributed, train
    cfg = load_config(args.config, args.cfg_options)
    backend = setup_distributed(
        args.launcher, args.device, cfg.get('env_cfg', {}).get('dist_cfg'))
    if args.seed is None and backend and \
            cfg.get('randomness', {}).get('seed') is None:
        args.seed = sync_random_seed()  # rank 0 draws, every rank uses it
    cfg = merge_args(cfg, args)
    set_dist_backend(cfg, backend)
    with cfg_options_guard(args.cfg_options):
        return train(cfg, fresh=args.fresh)


if __name__ == '__main__':
    run(main)
