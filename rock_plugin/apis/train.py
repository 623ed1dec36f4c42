"""Training as a Python API: :func:`train` a complete config, and what it
and evaluation share (the runner, the checks of classes and checkpoints).
The tools turn their flags into that config (``tools/_config_flags.py``)."""
import logging
import re
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from rock_plugin.utils.errors import CheckpointError, DataError
from rock_plugin.utils.work_dir import (WorkDirLock, check_work_dir,
                                        prepare_fresh_run)


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


def build_runner(cfg: Config):
    """The runner of ``cfg``: ``SafeLoadingRunner`` or a subclass of it,
    never mmengine's plain ``Runner``, whose ``resume`` executes the config
    text a checkpoint carries (a received checkpoint is data, not code). A
    config without ``runner_type`` or with ``'Runner'`` gets
    ``SafeLoadingRunner`` (same loop, safe loading); another runner type
    must subclass it. Its logger
    escapes control characters: class and file names in log lines
    (``precision/<class>``, tables) cannot drive the terminal."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from rock_plugin.engine.runners import SafeLoadingRunner
    from rock_plugin.utils.text import escape_log_records
    runner_type = cfg.get('runner_type') or 'Runner'
    runner_cls = RUNNERS.get(runner_type) if isinstance(runner_type, str) \
        else runner_type
    if runner_cls is None or runner_cls is Runner:
        cfg.runner_type = 'SafeLoadingRunner'
    elif not (isinstance(runner_cls, type) and
              issubclass(runner_cls, SafeLoadingRunner)):
        raise ValueError(
            f'runner_type {runner_type!r}: not a subclass of '
            'SafeLoadingRunner. '
            "mmengine's checkpoint loading runs config text stored in "
            'checkpoints; subclass rock_plugin.engine.SafeLoadingRunner')
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
            f'model.head.num_classes={len(classes)} and '
            f'data_preprocessor.num_classes={len(classes)} in the config',
            source)


def check_checkpoint_fits(model, checkpoint: str, strict: bool = True,
                          what: str = 'the config') -> dict:
    """Refuse, as one ``CheckpointError``, a ``checkpoint`` whose weights do
    not fit ``model`` (mmengine only warns, then gives wrong results or
    crashes on resume); ``strict`` also refuses missing or unexpected ones;
    ``what`` names the model's source. Returns the (safely) loaded file."""
    from rock_plugin.utils.checkpoint_io import load_checkpoint_file
    from rock_plugin.utils.model_wrappers import bare_model
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    weights = {re.sub(r'^module\.', '', k): v
               for k, v in ckpt.get('state_dict', ckpt).items()}
    model = bare_model(model, tta=True)  # the weights' holder
    own = model.state_dict()
    # buffers a module sizes from the file (the open-set head's bank)
    sized = {f'{name}.{b}'.lstrip('.') for name, m in model.named_modules()
             for b in getattr(m, 'variable_shape_buffers', ())}
    problems = [f'{k}: checkpoint {tuple(v.shape)}, model '
                f'{tuple(own[k].shape)}' for k, v in weights.items()
                if k in own and k not in sized and hasattr(v, 'shape') and
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
            + '; '.join(problems[:3]) + '). Use the config, with any '
            'overrides, the checkpoint was trained with')
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
        backend = setup_distributed(
            cfg.launcher, dist_cfg=cfg.get('env_cfg', {}).get('dist_cfg'))
        if backend:  # the runner reads it from the config
            cfg.merge_from_dict({'env_cfg.dist_cfg.backend': backend})
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
