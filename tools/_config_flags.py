"""The tools' flags as config edits: ``--cfg-options`` (checked), the data,
seed, split, AMP, resume and small-data flags of ``tools/train.py`` and
``tools/test.py``. Each edit changes ``cfg`` in place and returns it (or the
value it settled on); the library (:mod:`rock_plugin.apis`) never sees a
flag, only the config these give it.

As mmpretrain's ``tools/train.py`` ``merge_args``, but shared by the tools
that train or test. Imported by its plain name (``tools/`` is on the path of
a tool run as a script).
"""
import contextlib
import copy
import inspect
import os.path as osp
import random
import re
from typing import Iterator, Optional

from _common import (  # first: puts the repository on the path
    CONFIGS, REPO, check_files)
from mmengine.config import Config
from mmengine.logging import print_log

# Top-level keys the runner reads besides those of mmengine's Runner.
_EXTRA_TOP_KEYS = {'runner_type', 'model_wrapper_cfg', 'tta_model',
                   'tta_pipeline', 'custom_imports', 'filename'}
_EARLY_STOPPING = ('EarlyStoppingHook', 'mmengine.EarlyStoppingHook',
                   'ResumableEarlyStoppingHook',
                   'mmpretrain.ResumableEarlyStoppingHook')


def _datasets(cfg: Config):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is not None and loader.get('dataset') is not None:
            yield loader.dataset


def merge_cfg_options(cfg: Config, options: dict) -> Config:
    """``cfg.merge_from_dict(options)`` (``--cfg-options``) that refuses, as
    one ``ValueError``, an unknown top-level key or a path through a missing
    key (``model.hed.x``); :func:`explain_cfg_options_error` catches a
    misspelt last key when built.

    Example:
        >>> merge_cfg_options(cfg, {'train_cfg.max_epochs': 10})
        >>> merge_cfg_options(cfg, {'epochs': 3})
        Traceback (most recent call last):
        ValueError: --cfg-options epochs=3: the config has no setting...
    """
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
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        # torch refuses persistent workers without workers: `num_workers=0`
        # (to debug in one process) means no persistence
        if loader is not None and loader.get('num_workers', None) == 0 and \
                loader.get('persistent_workers'):
            loader.persistent_workers = False
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


def find_shipped_data(cfg: Config, path: str) -> Config:
    """A shipped config's bundled data from any folder: a relative
    ``data_root`` of a config in ``configs/`` (``demo/rock_thin_sections``)
    that is not found from the current folder is read beside ``configs/``
    (the checkout, or an installed wheel's ``rock_plugin/.mim``).

    Example:
        >>> cfg = find_shipped_data(cfg, 'configs/rock_quickstart.py')
        >>> cfg.train_dataloader.dataset.data_root  # from another folder
        '/.../demo/rock_thin_sections'
    """
    configs = osp.realpath(CONFIGS)
    if osp.commonpath([osp.realpath(path), configs]) != configs:
        return cfg  # the user's config: relative to the current folder
    for owner in (cfg, *_datasets(cfg)):
        root = owner.get('data_root')
        if isinstance(root, str) and root and not osp.isabs(root) and \
                not osp.exists(root) and osp.isdir(osp.join(REPO, root)):
            owner.data_root = osp.join(REPO, root)
    return cfg


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile`` plus checked ``--cfg-options``
    (:func:`merge_cfg_options`); a missing file is one error line; a
    shipped config finds its bundled data (:func:`find_shipped_data`)."""
    check_files((path, 'config file'))
    cfg = find_shipped_data(Config.fromfile(path), path)
    if cfg_options:
        merge_cfg_options(cfg, cfg_options)
    return cfg


@contextlib.contextmanager
def cfg_options_guard(cfg_options: Optional[dict]) -> Iterator[None]:
    """Turn a component's "unexpected keyword argument" caused by a
    ``--cfg-options`` typo into the one-line ``--cfg-options:`` error."""
    try:
        yield
    except TypeError as exc:
        explained = explain_cfg_options_error(exc, cfg_options)
        if explained is None:
            raise
        raise explained from None


def set_data_options(cfg: Config, data_root: Optional[str] = None,
                     skip_bad_images: bool = False) -> Config:
    """``--data-root`` / ``--skip-bad-images``: set ``data_root`` /
    ``skip_bad_images`` of every dataset."""
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
    """``--seed`` / ``--deterministic``: set ``cfg.randomness`` with
    ``seed``, else the config's, else a new one; returns it. Datasets that
    split themselves (``split='train'``) get it as their split seed, so the
    split follows the run's seed."""
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
    """``--split-validation --ratio --fold``: validate on a stratified
    ``ratio`` of the training annotations, fold ``fold`` (default: derived
    from ``seed``) of the split with ``seed`` (default:
    ``cfg.randomness.seed``).

    Example:
        >>> train_dataloader = dict(dataset=dict(split='train',
        ...                                      val_ratio=0.2, fold=None))
    """
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
    """``--amp``: float16 ``AmpOptimWrapper`` on CUDA, bfloat16
    ``CpuAmpOptimWrapper`` on the CPU.

    Example:
        >>> optim_wrapper = dict(type='CpuAmpOptimWrapper', ...)
    """
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
    changed ``max_epochs`` (``--cfg-options``) moves them too."""
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
    """``--resume``: ``'auto'`` (no path), the latest checkpoint in the work
    dir (:func:`rock_plugin.utils.work_dir.find_resume_checkpoint`); a path:
    that checkpoint; None: a fresh run.

    Example:
        >>> resume = True
        >>> load_from = 'work_dirs/rock_b4/epoch_3.pth'
    """
    from rock_plugin.utils.work_dir import (checkpoint_dir,
                                            find_resume_checkpoint)
    if resume == 'auto':
        hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
        try:
            resume = find_resume_checkpoint(cfg.work_dir, checkpoint_dir(
                cfg.work_dir, hook.get('out_dir')))
        except FileNotFoundError:
            raise FileNotFoundError(
                f'{cfg.work_dir}: --resume found no checkpoint to continue. '
                'Start without --resume, or give the checkpoint: --resume '
                'path/to/epoch_N.pth') from None
    elif resume is not None and not osp.isfile(resume):
        raise FileNotFoundError(f'{resume}: checkpoint to resume from '
                                'not found')
    if resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    return cfg


def set_dist_backend(cfg: Config, backend: str) -> Config:
    """Tell the runner the process group's backend (gloo on CPU), as
    :func:`rock_plugin.apis.train.setup_distributed` returned it."""
    if backend:
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': backend})
    return cfg


def set_early_stopping(cfg: Config, patience: int) -> Config:
    """``--patience``: stop after ``patience`` (>= 1) validations without
    improvement: ``ResumableEarlyStoppingHook`` (mmengine's
    ``EarlyStoppingHook`` whose count survives ``--resume``) on the
    checkpoint hook's ``save_best`` metric and rule (default
    ``accuracy/top1``, greater). An early stopping hook already in the
    config gets the new patience; a plain ``EarlyStoppingHook`` becomes the
    resumable one, its settings kept.

    Example:
        >>> custom_hooks = [dict(type='ResumableEarlyStoppingHook',
        ...                      monitor='accuracy/top1', patience=10)]
    """
    if patience < 1:
        raise ValueError(f'--patience must be at least 1, got {patience}')
    if not cfg.get('val_dataloader') or not cfg.get('val_cfg'):
        raise ValueError('--patience stops on the validation metric, but '
                         'validation is off (--no-validate)')
    ckpt = cfg.get('default_hooks', {}).get('checkpoint') or {}
    monitor = ckpt.get('save_best')
    if not isinstance(monitor, str) or monitor == 'auto':
        monitor = 'accuracy/top1'
    rule = ckpt.get('rule') if isinstance(ckpt.get('rule'), str) else None
    hooks = list(cfg.get('custom_hooks') or [])
    for hook in hooks:
        kind = hook.get('type')
        if getattr(kind, '__name__', kind) in _EARLY_STOPPING:  # or a class
            hook['type'] = 'ResumableEarlyStoppingHook'
            hook['patience'] = patience
            break
    else:
        hooks.append(dict(type='ResumableEarlyStoppingHook', monitor=monitor,
                          rule=rule or 'greater', patience=patience))
    cfg.custom_hooks = hooks
    return cfg


def set_class_weight(cfg: Config, class_weight: Optional[str]) -> Config:
    """``--class-weight auto``: the loss weighs each class by its inverse
    frequency in the training split (``AutoClassWeightHook`` computes them
    at the start); None changes nothing.

    Example:
        >>> model = dict(head=dict(loss=dict(type='CrossEntropyLoss',
        ...                                  class_weight='auto')))
        >>> custom_hooks = [..., dict(type='AutoClassWeightHook')]
    """
    if class_weight is None:
        return cfg
    if class_weight != 'auto':
        raise ValueError(f"--class-weight: only 'auto' is known, got "
                         f'{class_weight!r}')
    loss = cfg.model.get('head', {}).get('loss')
    if loss is None:
        raise ValueError('--class-weight auto: the model has no '
                         'model.head.loss to weight')
    loss['class_weight'] = 'auto'
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'AutoClassWeightHook' for h in hooks):
        hooks.append(dict(type='AutoClassWeightHook'))
    cfg.custom_hooks = hooks
    return cfg


def set_balanced_sampler(cfg: Config) -> Config:
    """``--balanced-sampler``: draw every class about equally often
    (``ClassBalancedSampler``), inside the config's ``EpochSeededSampler``
    if any (seeded augmentation).

    Example:
        >>> train_dataloader = dict(sampler=dict(
        ...     type='EpochSeededSampler',
        ...     sampler=dict(type='ClassBalancedSampler')))
    """
    loader = cfg.train_dataloader
    balanced = dict(type='ClassBalancedSampler')
    if (loader.get('sampler') or {}).get('type') == 'EpochSeededSampler':
        balanced = dict(type='EpochSeededSampler', sampler=balanced)
    loader.sampler = balanced
    return cfg


def has_open_set_head(model_cfg) -> bool:
    """Whether ``model_cfg.head`` is an ``OpenSetLinearClsHead`` or a
    subclass (``OpenSetMLPClsHead``): a head with a novelty score.

    Looks the name up among the registered classes only: a dotted name is
    not imported (a config read from a checkpoint is data).

    Example:
        >>> has_open_set_head(dict(head=dict(type='OpenSetMLPClsHead')))
        True
    """
    from mmpretrain.registry import MODELS

    from rock_plugin.models.heads import OpenSetLinearClsHead
    from rock_plugin.utils.registry_names import is_registered_subclass
    return is_registered_subclass(MODELS, (model_cfg or {}).get('head'),
                                  OpenSetLinearClsHead)


def set_frozen_stages(cfg: Config, frozen_stages: int,
                      lr_mult: float = 0.1) -> Config:
    """``--frozen-stages N``: freeze the backbone's stem and stages
    ``<= N`` only (``RockImageClassifier(frozen_stages=N)``) and train the
    rest at ``lr_mult`` x the lr, unless the config's ``paramwise_cfg``
    already names the backbone (``configs/rock_quickstart_finetune.py``).

    Example:
        >>> model = dict(frozen_stages=5)
        >>> optim_wrapper = dict(paramwise_cfg=dict(
        ...     custom_keys={'backbone': dict(lr_mult=0.1)}))
    """
    from mmpretrain.registry import MODELS

    from rock_plugin.models.classifiers import (DihedralMeanClassifier,
                                                RockImageClassifier)
    from rock_plugin.utils.registry_names import is_registered_subclass
    model = cfg.get('model') or {}
    if is_registered_subclass(MODELS, model, DihedralMeanClassifier):
        # its FeatureCacheTrainLoop computes the features once, which only
        # a wholly frozen backbone allows
        raise ValueError(
            '--frozen-stages: not with DihedralMeanClassifier, whose '
            'features come from a wholly frozen backbone, computed once '
            '(FeatureCacheTrainLoop); to fine-tune the top stages, train '
            'configs/rock_quickstart_finetune.py')
    if not is_registered_subclass(MODELS, model, RockImageClassifier):
        raise ValueError('--frozen-stages needs model.type='
                         f"'RockImageClassifier', got {model.get('type')!r}")
    model.frozen_stages = frozen_stages
    paramwise = dict(cfg.optim_wrapper.get('paramwise_cfg') or {})
    keys = dict(paramwise.get('custom_keys') or {})
    keys.setdefault('backbone', dict(lr_mult=lr_mult))
    # assigned, not edited in place: ConfigDict.setdefault returns a copy
    cfg.optim_wrapper.paramwise_cfg = dict(paramwise, custom_keys=keys)
    print_log(f'--frozen-stages {frozen_stages}: the stages after it train, '
              f"at lr x {keys['backbone'].get('lr_mult', 1.0)}",
              logger='current')
    return cfg


def set_classes_from_data(cfg: Config,
                          cfg_options: Optional[dict] = None) -> Optional[int]:
    """Let the head, the data preprocessor and the metrics' top-k follow the
    training data's class count (folders, or the classes file), as
    Ultralytics and fastai do, unless ``--cfg-options`` sets a
    ``num_classes`` (then a mismatch stays an error, from the trainer).

    Args:
        cfg (Config): With ``train_dataloader.dataset`` of ``RockDataset``.
        cfg_options (dict, optional): The ``--cfg-options`` given.

    Returns:
        int | None: The class count set, or None when nothing was changed.

    Example:
        >>> set_classes_from_data(cfg)  # a folder with 3 class folders
        3
    """
    if any(key.split('.')[-1] == 'num_classes' for key in cfg_options or {}):
        return None
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    head = (cfg.get('model') or {}).get('head') or {}
    from mmpretrain.registry import DATASETS

    from rock_plugin.datasets import RockDataset
    from rock_plugin.utils.registry_names import registered_class
    dataset_class = registered_class(DATASETS, dataset)
    if not (isinstance(dataset_class, type) and issubclass(
            dataset_class, RockDataset)) or head.get('num_classes') is None:
        return None
    try:
        count = len(dataset_class.class_names(**dataset))
    except (ValueError, OSError):  # the dataset build reports it, in full
        return None
    if count == head.num_classes:
        return None
    where = osp.join(dataset.get('data_root', ''),
                     dataset.get('ann_file', '') or '')
    print_log(f'classes follow the data: {count} classes in {where} (the '
              f'config said {head.num_classes}); model.head.num_classes, '
              'data_preprocessor.num_classes and the top-k follow',
              logger='current')
    head.num_classes = count
    for owner in (cfg, cfg.model):
        if isinstance(owner.get('data_preprocessor'), dict) and \
                'num_classes' in owner.data_preprocessor:
            owner.data_preprocessor.num_classes = count
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        for evaluator in (evaluators if isinstance(evaluators, list)
                          else [evaluators] if evaluators else []):
            topk = evaluator.get('topk')
            if isinstance(topk, (list, tuple)):
                evaluator.topk = tuple(k for k in topk if k <= count) or (1, )
    return count
