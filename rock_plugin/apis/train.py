"""Training as a Python API: the config edits ``tools/train.py`` makes (each
changes ``cfg`` in place and returns it) and :func:`train`."""
import copy
import inspect
import logging
import os.path as osp
import random
import re
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from rock_plugin.utils.errors import CheckpointError, DataError
from .work_dir import (WorkDirLock, check_work_dir, checkpoint_dir,
                       find_resume_checkpoint, prepare_fresh_run)

# Top-level keys the runner reads besides those of mmengine's Runner.
_EXTRA_TOP_KEYS = {'runner_type', 'model_wrapper_cfg', 'tta_model',
                   'tta_pipeline', 'custom_imports', 'filename'}


def _datasets(cfg: Config):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is not None and loader.get('dataset') is not None:
            yield loader.dataset


def merge_cfg_options(cfg: Config, options: dict) -> Config:
    """``cfg.merge_from_dict(options)`` (``--cfg-options``) that refuses, as
    one ``ValueError``, an unknown top-level key or a path through a missing
    key (``model.hed.x``); :func:`explain_cfg_options_error` catches a
    misspelt last key when built."""
    from mmengine.runner import Runner
    known = set(cfg.keys()) | _EXTRA_TOP_KEYS | set(
        inspect.signature(Runner.__init__).parameters)
    for key, value in options.items():
        parts = key.split('.')
        if parts[0] not in known:
            raise ValueError(
                f'--cfg-options {key}={value}: the config has no setting '
                f'{parts[0]!r} (check the spelling; `python -c "from '
                'mmengine import Config; print(Config.fromfile(CONFIG)'
                '.pretty_text)"` shows them all)')
        node = cfg.to_dict()
        for depth, part in enumerate(parts[:-2]):  # last key: when built
            node = node.get(part)
            if not isinstance(node, dict):
                break  # an empty (None) setting may be filled
            if parts[depth + 1] not in node:
                where = '.'.join(parts[:depth + 2])
                raise ValueError(f'--cfg-options {key}={value}: the config '
                                 f'has no {where!r} (check the spelling)')
    try:
        cfg.merge_from_dict(options)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise ValueError(f'--cfg-options: {exc}') from None
    return cfg


def explain_cfg_options_error(exc: BaseException,
                              options: Optional[dict]) -> Optional[ValueError]:
    """The one-line ``ValueError`` for ``exc`` (raised while building or
    running) when one of the ``--cfg-options`` caused it, else None."""
    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if not match or not options:
        return None
    for key, value in options.items():
        if match.group(1) in key.split('.'):
            owner = re.search(r'(\w+)\.__init__\(\)', str(exc))
            where = f' of {owner.group(1)}' if owner else ''
            return ValueError(
                f'--cfg-options {key}={value}: {match.group(1)!r} is not a '
                f'setting{where} (check the spelling)')
    return None


def set_data_options(cfg: Config, data_root: Optional[str] = None,
                     skip_bad_images: bool = False) -> Config:
    """Set ``data_root`` / ``skip_bad_images`` of every dataset."""
    for dataset in _datasets(cfg):
        if data_root:
            dataset.data_root = data_root
        if skip_bad_images:
            dataset.skip_bad_images = True
    return cfg


def draw_seed() -> int:
    """A random seed (``tools/train.py`` draws one when none is given)."""
    return random.SystemRandom().randint(0, 2**31 - 1)


def set_seed(cfg: Config, seed: Optional[int] = None,
             deterministic: bool = False) -> int:
    """Set ``cfg.randomness``: ``seed``, else the config's, else a new one;
    returns it. Datasets that split themselves (``split='train'``) get it as
    their split seed, so the split follows the run's seed."""
    if seed is None:
        seed = cfg.get('randomness', {}).get('seed', None)
    if seed is None:
        seed = draw_seed()
    cfg.randomness = dict(cfg.get('randomness', {}), seed=seed)
    if deterministic:
        cfg.randomness['deterministic'] = True
    for dataset in _datasets(cfg):
        if dataset.get('split') is not None:
            dataset.split_seed = seed
    return seed


def set_split_validation(cfg: Config, ratio: float = 0.2,
                         fold: Optional[int] = None,
                         seed: Optional[int] = None) -> Config:
    """Validate on a stratified ``ratio`` of the training annotations: fold
    ``fold`` (default: derived from ``seed``) of the split with ``seed``
    (default: ``cfg.randomness.seed``)."""
    if seed is None:
        seed = cfg.get('randomness', {}).get('seed')
    train_ds = cfg.train_dataloader.dataset
    train_ds.update(split='train', val_ratio=ratio, fold=fold,
                    split_seed=seed)
    val_ds = copy.deepcopy(train_ds)
    val_pipeline = cfg.val_dataloader.dataset.pipeline \
        if cfg.get('val_dataloader') else cfg.test_dataloader.dataset.pipeline
    val_ds.update(split='val', pipeline=val_pipeline, test_mode=True)
    cfg.val_dataloader.dataset = val_ds
    return cfg


def set_amp(cfg: Config, device: Optional[str] = None) -> Config:
    """Mixed precision: float16 ``AmpOptimWrapper`` on CUDA, bfloat16
    ``CpuAmpOptimWrapper`` on the CPU."""
    from rock_plugin.engine.distributed import use_cuda
    wrapper = cfg.optim_wrapper
    if use_cuda(device):
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.type = 'CpuAmpOptimWrapper'
        print_log('--amp on CPU: bfloat16 autocast (float16 AMP needs CUDA)',
                  logger='current')
    return cfg


def fill_schedule_end(cfg: Config) -> Config:
    """Epoch schedulers without ``end`` end at ``train_cfg.max_epochs``, so a
    changed ``max_epochs`` moves them too."""
    max_epochs = cfg.train_cfg.get('max_epochs')
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if sched.get('by_epoch', True) and sched.get('end') is None \
                and max_epochs is not None:
            sched['end'] = max_epochs
    return cfg


def set_resume(cfg: Config, resume: Optional[str]) -> Config:
    """``resume='auto'``: the latest checkpoint in the work dir
    (:func:`find_resume_checkpoint`); a path: that checkpoint; None: a fresh
    run."""
    if resume == 'auto':
        hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
        resume = find_resume_checkpoint(cfg.work_dir, checkpoint_dir(
            cfg.work_dir, hook.get('out_dir')))
    elif resume is not None and not osp.isfile(resume):
        raise FileNotFoundError(f'{resume}: checkpoint to resume from '
                                'not found')
    if resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    return cfg


def setup_distributed(launcher: str, device: Optional[str] = None,
                      dist_cfg: Optional[dict] = None) -> str:
    """Start the process group before the runner (which then skips its own)
    so that rank 0 alone locks the work dir and draws the seed: ``slurm`` and
    ``mpi`` through mmengine's ``init_dist``, the rest through
    ``init_distributed`` (gloo on CPU). Returns the backend, or ``''``."""
    import torch.distributed as dist

    from rock_plugin.engine.distributed import init_distributed
    if launcher in ('slurm', 'mpi') and not dist.is_initialized():
        from mmengine.dist import init_dist
        init_dist(launcher, **(dist_cfg or {}))
        return dist.get_backend()
    return init_distributed(launcher, device)


def set_dist_backend(cfg: Config, backend: str) -> Config:
    """Tell the runner the process group's backend (gloo on CPU)."""
    if backend:
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': backend})
    return cfg


def build_runner(cfg: Config):
    """The runner of ``cfg``: ``RockRunner`` or a subclass of it, never
    mmengine's plain ``Runner``, whose ``resume`` executes the config text a
    checkpoint carries (a received checkpoint is data, not code). A config
    without ``runner_type`` or with ``'Runner'`` gets ``RockRunner`` (same
    loop, safe loading); another runner type must subclass it. Its logger
    escapes control characters: class and file names in log lines
    (``precision/<class>``, tables) cannot drive the terminal."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from rock_plugin.engine.runners.rock_runner import RockRunner
    from rock_plugin.utils.text import escape_log_records
    runner_type = cfg.get('runner_type') or 'Runner'
    runner_cls = RUNNERS.get(runner_type) if isinstance(runner_type, str) \
        else runner_type
    if runner_cls is None or runner_cls is Runner:
        cfg.runner_type = 'RockRunner'
    elif not (isinstance(runner_cls, type) and
              issubclass(runner_cls, RockRunner)):
        raise ValueError(
            f'runner_type {runner_type!r}: not a subclass of RockRunner. '
            "mmengine's checkpoint loading runs config text stored in "
            'checkpoints; subclass rock_plugin.engine.RockRunner instead')
    runner = RUNNERS.build(cfg)
    escape_log_records(runner.logger)
    return runner


def check_num_classes(cfg: Config, dataset) -> None:
    """The model's class count must match the classes the data has."""
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


def check_checkpoint_fits(model, checkpoint: str, strict: bool = True,
                          what: str = 'the config') -> dict:
    """Refuse, as one ``CheckpointError``, a ``checkpoint`` whose weights do
    not fit ``model`` (mmengine only warns, then gives wrong results or
    crashes on resume); ``strict`` also refuses missing or unexpected ones;
    ``what`` names the model's source. Returns the (safely) loaded file."""
    from mmengine.model import BaseTTAModel, is_model_wrapper

    from rock_plugin.utils.checkpoint_io import load_checkpoint_file
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    weights = {re.sub(r'^module\.', '', k): v
               for k, v in ckpt.get('state_dict', ckpt).items()}
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module  # DDP and the TTA wrapper hold the weights
    own = model.state_dict()
    problems = [f'{k}: checkpoint {tuple(v.shape)}, model '
                f'{tuple(own[k].shape)}' for k, v in weights.items()
                if k in own and hasattr(v, 'shape') and
                tuple(v.shape) != tuple(own[k].shape)]
    if strict:
        for label, keys in (
                ('weights missing', [k for k in own if k not in weights]),
                ('unexpected weights', [k for k in weights if k not in own])):
            if keys:
                problems.append(f'{len(keys)} {label} ({keys[0]}' +
                                (', ...' if len(keys) > 1 else '') + ')')
    if problems:
        raise CheckpointError(
            f'{checkpoint}: the checkpoint does not fit {what} ('
            + '; '.join(problems[:3]) + '). Use the config (and '
            '--cfg-options) the checkpoint was trained with')
    return ckpt


def train(cfg: Config, fresh: bool = False):
    """Train with ``cfg`` in a locked work dir; a fresh run refuses one with
    an earlier run's checkpoints, and a resume checkpoint must fit.

    Args:
        cfg (Config): A complete config (``work_dir`` set).
        fresh (bool): Archive an earlier run's files instead of refusing.

    Returns:
        Runner: The trained runner.

    Example:
        >>> cfg = Config.fromfile('configs/rock_quickstart.py')
        >>> cfg.work_dir = 'work_dirs/quick'
        >>> runner = train(cfg)
    """
    from mmengine.dist import broadcast_object_list, is_main_process
    if cfg.get('work_dir') is None:
        raise ValueError('cfg.work_dir is not set')
    if cfg.get('launcher', 'none') != 'none':
        set_dist_backend(cfg, setup_distributed(
            cfg.launcher, dist_cfg=cfg.get('env_cfg', {}).get('dist_cfg')))
    lock = WorkDirLock(cfg.work_dir)
    error = [None]
    if is_main_process():
        try:
            check_work_dir(cfg.work_dir)
            lock.acquire()
            if not cfg.get('resume', False):
                prepare_fresh_run(cfg.work_dir, fresh)
        except (OSError, ValueError, RuntimeError) as exc:
            lock.release()
            error = [exc]
    broadcast_object_list(error)  # every rank stops, not only rank 0
    if error[0] is not None:
        raise error[0]
    try:
        runner = build_runner(cfg)
        check_num_classes(cfg, runner.train_dataloader.dataset)
        if cfg.get('resume', False) and cfg.get('load_from'):
            check_checkpoint_fits(runner.model, cfg.load_from, strict=False,
                                  what='the model of this config')
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
        seed = cfg.randomness.seed
        print_log(f'rock_plugin: seed {seed} (repeat this run with --seed '
                  f'{seed}), work dir {cfg.work_dir}, world size '
                  f'{runner.world_size}' +
                  (f' ({backend})' if runner.world_size > 1 and backend
                   else ''), logger='current')
        runner.train()
        loaders = [runner.train_dataloader]
        if runner.val_loop is not None:
            loaders.append(runner.val_loop.dataloader)
        skipped = {path for loader in loaders
                   for path in getattr(loader.dataset, 'skipped_images', [])}
        if skipped:
            print_log(f'rock_plugin: {len(skipped)} unreadable image(s) were '
                      'skipped (warnings above name each one)',
                      logger='current', level=logging.WARNING)
        return runner
    finally:
        lock.release()
