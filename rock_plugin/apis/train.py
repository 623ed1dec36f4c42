"""Training entry point: the original train.py's flags on the MMEngine Runner."""
import argparse
import logging
import copy
import os
import os.path as osp
import random
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags: mmpretrain's plus every flag of the original."""
    parser = argparse.ArgumentParser(
        description='Train a rock classifier (MMEngine/MMPretrain plugin).')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs, history, curves and '
                        'checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument(
        '--resume', '--resume-from', dest='resume', nargs='?', type=str,
        const='auto',
        help='continue a run: with a path, from that checkpoint; without, '
        'from the latest checkpoint in the work dir (--resume-from is the '
        "original's name)")
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (float16 on CUDA, bfloat16 '
                        'autocast on CPU)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not validate during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the real batch size')
    parser.add_argument('--data-root', help='set data_root of every dataset')
    parser.add_argument('--seed', type=int, default=None,
                        help='random seed (default: random, broadcast from '
                        'rank 0; logged and stored in checkpoints)')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms (cuDNN, torch)')
    parser.add_argument('--device', default=None,
                        help='cpu forces CPU; cuda (default when available)')
    parser.add_argument('--gpu-id', type=int, default=None,
                        help='which GPU for a single-GPU run')
    parser.add_argument('--split-validation', action='store_true',
                        help='validate on a stratified fold of the training '
                        'annotations instead of the test set')
    parser.add_argument('--ratio', type=float, default=0.2,
                        help='validation fraction with --split-validation')
    parser.add_argument('--fold', type=int, default=None,
                        help='validation fold index with --split-validation '
                        '(default: derived from the seed)')
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out unreadable images (with a warning '
                        'each and a count) instead of stopping')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow loading stock mmengine checkpoints you '
                        'trust (see README, Troubleshooting)')
    parser.add_argument('--debug', action='store_true',
                        help='show full tracebacks')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, xxx=yyy (e.g. '
        'model.backbone.init_cfg.checkpoint=/path/b4.pth)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm',
                                               'mpi'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser


def _datasets(cfg: Config):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is not None and loader.get('dataset') is not None:
            yield key, loader.dataset


def build_config(args: argparse.Namespace, seed: Optional[int] = None
                 ) -> Config:
    """Turn parsed flags into the runner config.

    Args:
        args (argparse.Namespace): From :func:`build_parser`.
        seed (int, optional): The seed to use when ``args.seed`` is None
            (``train`` draws one and broadcasts it from rank 0).

    Returns:
        Config: Ready for ``Runner.from_cfg``.
    """
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        try:
            cfg.merge_from_dict(args.cfg_options)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f'--cfg-options: {exc}') from None
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    for _, dataset in _datasets(cfg):
        if args.data_root:
            dataset.data_root = args.data_root
        if args.skip_bad_images:
            dataset.skip_bad_images = True

    seed = args.seed if args.seed is not None else \
        cfg.get('randomness', {}).get('seed', None)
    if seed is None:
        seed = _draw_seed()
    cfg.randomness = dict(cfg.get('randomness', {}), seed=seed)
    if args.deterministic:
        cfg.randomness['deterministic'] = True

    if args.split_validation:
        train_ds = cfg.train_dataloader.dataset
        train_ds.update(split='train', val_ratio=args.ratio, fold=args.fold,
                        split_seed=seed)
        val_ds = copy.deepcopy(train_ds)
        val_pipeline = cfg.val_dataloader.dataset.pipeline \
            if cfg.get('val_dataloader') else cfg.test_dataloader.dataset.pipeline
        val_ds.update(split='val', pipeline=val_pipeline, test_mode=True)
        cfg.val_dataloader.dataset = val_ds
    else:
        # A config that splits by itself follows the run's seed too.
        for _, dataset in _datasets(cfg):
            if dataset.get('split') is not None:
                dataset.split_seed = seed

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.amp:
        from rock_plugin.compat import use_cuda
        wrapper = cfg.optim_wrapper
        if use_cuda(args.device):
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
        else:
            wrapper.type = 'CpuAmpOptimWrapper'
            print_log('--amp on CPU: bfloat16 autocast (float16 AMP needs '
                      'CUDA)', logger='current')

    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', dict(base_batch_size=256))
        cfg.auto_scale_lr.enable = True

    max_epochs = cfg.train_cfg.get('max_epochs')
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if sched.get('by_epoch', True) and sched.get('end') is None \
                and max_epochs is not None:
            sched['end'] = max_epochs

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = find_resume_checkpoint(cfg.work_dir)
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'{args.resume}: checkpoint to resume '
                                    'from not found')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def _is_complete_checkpoint(path: str) -> bool:
    # torch checkpoints are zip archives whose directory sits at the end, so a
    # truncated file fails this cheap check.
    import zipfile
    return osp.isfile(path) and zipfile.is_zipfile(path)


def find_resume_checkpoint(work_dir: str) -> str:
    """The checkpoint ``--resume`` (no path) continues from.

    mmengine trusts the ``last_checkpoint`` pointer blindly; here a pointer to
    a missing or truncated file falls back to the newest complete
    ``epoch_*.pth`` (with a warning), and no checkpoint at all is an error
    instead of a silent fresh start.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str: Path of the checkpoint to resume from.
    """
    import glob
    import re
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = open(pointer).read().strip() if osp.isfile(pointer) else ''
    if named and _is_complete_checkpoint(named):
        return named
    found = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')),
                   key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]),
                   reverse=True)
    for path in found:
        if _is_complete_checkpoint(path):
            if named:
                print_log(f'resume: {named} (from last_checkpoint) is missing '
                          f'or incomplete; continuing from {path} instead',
                          logger='current', level=logging.WARNING)
            return path
    raise FileNotFoundError(
        f'{work_dir}: --resume found no checkpoint to continue. Start '
        'without --resume, or give the checkpoint: --resume '
        'path/to/epoch_N.pth')


def check_work_dir(work_dir: str) -> None:
    """Fail at start, not after an epoch, when the work dir is unusable."""
    import tempfile
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f'work dir {work_dir} is not writable '
                      f'({exc.strerror or exc}); choose another with '
                      '--work-dir') from None


def check_num_classes(cfg: Config, dataset) -> None:
    """The model's class count must match the classes the data has."""
    from rock_plugin.datasets import DataError
    head = cfg.model.get('head') or {}
    expected = head.get('num_classes')
    classes = list(dataset.metainfo.get('classes') or [])
    if expected is not None and classes and expected != len(classes):
        source = getattr(dataset, 'ann_file', '') or dataset.img_prefix
        raise DataError(
            f'the model has num_classes={expected} (model.head.num_classes) '
            f'but the data has {len(classes)} classes {classes}. Set '
            f'--cfg-options model.head.num_classes={len(classes)} '
            f'data_preprocessor.num_classes={len(classes)}', source)


def _draw_seed() -> int:
    return random.SystemRandom().randint(0, 2**31 - 1)


def setup_device(args: argparse.Namespace) -> None:
    """Apply ``--device cpu`` / ``--gpu-id`` before anything touches CUDA."""
    if args.device is not None and str(args.device).startswith('cpu'):
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    elif args.gpu_id is not None and args.launcher == 'none':
        os.environ['CUDA_VISIBLE_DEVICES'] = str(args.gpu_id)
    if args.trust_checkpoint:
        from rock_plugin.compat import TRUST_ENV
        os.environ[TRUST_ENV] = '1'
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def train(argv: Optional[List[str]] = None):
    """Parse flags, build the runner and train; returns the runner.

    Example:
        >>> train(['configs/rock_quickstart.py', '--work-dir', 'work_dirs/q'])
    """
    args = build_parser().parse_args(argv)
    setup_device(args)
    import rock_plugin  # noqa: F401  (registries, safe checkpoint loading)
    from mmengine.dist import sync_random_seed
    from mmengine.runner import Runner

    from rock_plugin.compat import init_distributed
    backend = init_distributed(args.launcher, args.device)
    seed = args.seed
    if seed is None and backend:
        seed = sync_random_seed()  # rank 0 draws, every rank uses it
    if seed is not None and args.seed is None:
        args.seed = seed
    cfg = build_config(args)
    if backend:
        cfg.env_cfg = dict(cfg.get('env_cfg', {}))
        cfg.env_cfg['dist_cfg'] = dict(cfg.env_cfg.get('dist_cfg', {}),
                                       backend=backend)
    check_work_dir(cfg.work_dir)
    runner = Runner.from_cfg(cfg)
    check_num_classes(cfg, runner.train_dataloader.dataset)
    print_log(f'rock_plugin: seed {cfg.randomness.seed} (repeat this run with '
              f'--seed {cfg.randomness.seed}), work dir {cfg.work_dir}, '
              f'world size {runner.world_size}'
              + (f' ({backend})' if backend else ''), logger='current')
    runner.train()
    loaders = [runner.train_dataloader]
    if runner.val_loop is not None:
        loaders.append(runner.val_loop.dataloader)
    skipped = sorted({path for loader in loaders
                      for path in getattr(loader.dataset, 'skipped_images', [])})
    if skipped:
        print_log(f'rock_plugin: {len(skipped)} unreadable image(s) were '
                  'skipped (warnings above name each one)', logger='current',
                  level=logging.WARNING)
    return runner
