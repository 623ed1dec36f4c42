"""Evaluation as a Python API (``tools/test.py``): mmpretrain's test of a
checkpoint that strictly fits the model. What a test run writes is the
config's: ``TestResultsHook`` (result files), ``DumpResultsHook``
(``--out``) and ``PredictionVisualizationHook`` (``--show-dir``), reading
the test evaluator's ``PredictionCollector``."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

# Earlier home of the --show-dir drawing, kept for imports.
from rock_plugin.engine.hooks.prediction_visualization_hook import \
    save_prediction_images  # noqa: F401


def read_checkpoint_meta(checkpoint: str) -> dict:
    """A checkpoint's ``meta``, loaded safely ({} for a bare state dict)."""
    from rock_plugin.utils.checkpoint_io import load_checkpoint_file
    from rock_plugin.apis.onnx_metadata import check_classes
    from rock_plugin.utils.errors import DataError
    ckpt = load_checkpoint_file(osp.expanduser(checkpoint), map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    meta = dict(meta) if isinstance(meta, dict) else {}
    # A checkpoint is data: the values read from it must have their types.
    dataset_meta = meta.get('dataset_meta')
    if isinstance(dataset_meta, dict) and \
            dataset_meta.get('classes') is not None:
        check_classes(dataset_meta['classes'], checkpoint,
                      'meta.dataset_meta.classes')
    elif dataset_meta is not None and not isinstance(dataset_meta, dict):
        raise DataError('meta.dataset_meta must be a dict, got '
                        f'{type(dataset_meta).__name__}', checkpoint)
    seed = meta.get('seed')
    if seed is not None and (isinstance(seed, bool) or
                             not isinstance(seed, int)):
        raise DataError(f'meta.seed must be an integer, got {seed!r:.40}',
                        checkpoint)
    return meta


def check_test_classes(dataset, meta: dict) -> None:
    """Refuse test data whose classes are not those the checkpoint (its
    ``meta``, :func:`read_checkpoint_meta`) was trained on: the labels
    would not match."""
    classes = [str(c) for c in dataset.metainfo.get('classes', ())]
    trained = (meta.get('dataset_meta') or {}).get('classes')
    if trained and classes and list(trained) != classes:
        raise ValueError(
            f'the test data has classes {classes} but the checkpoint was '
            f'trained on {list(trained)}: labels would not match. Point '
            '--data-root at the right data or set the class names, e.g. '
            '--cfg-options test_dataloader.dataset.classes=annotations.txt')


def evaluate(cfg: Config, checkpoint: str,
             meta: Optional[dict] = None) -> dict:
    """Test a checkpoint: build the runner, check that the checkpoint fits
    (weights strictly, classes by ``meta``), ``runner.test()``.

    Args:
        cfg (Config): A complete config (``work_dir``, test data, the test
            hooks: ``tools/test.py``'s ``merge_args``); unchanged.
        checkpoint (str): The ``.pth`` file; must fit the model strictly.
        meta (dict, optional): The checkpoint's ``meta``, to check classes.

    Returns:
        dict: ``metrics`` (every rank); on rank 0 with a ``TestResultsHook``
        also its ``results``: ``details``, ``predictions``, ``classes``,
        ``results_dir``, ``files`` and ``summary`` (``summary.json``).

    Example:
        >>> evaluate(cfg, 'work_dirs/rock_b4/best.pth')['metrics']
    """
    import torch.distributed as dist

    from rock_plugin.engine.hooks import TestResultsHook
    from .train import build_runner, check_checkpoint_fits
    if cfg.get('test_dataloader') is None:
        raise ValueError(f'{cfg.filename}: the config has no test_dataloader')
    # The runner saves this config as <name>_test.py, not over the training
    # run's copy in the work dir (which predict and export read).
    stem = osp.splitext(osp.basename(cfg.filename or 'config.py'))[0]
    cfg = Config(cfg.to_dict(), cfg_text=cfg.text, filename=f'{stem}_test.py')
    cfg.load_from, cfg.resume = osp.expanduser(checkpoint), False
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, cfg.load_from, strict=True)
    check_test_classes(runner.test_loop.dataloader.dataset, meta or {})
    hook = next((h for h in runner.hooks if isinstance(h, TestResultsHook)),
                None)
    metrics = None
    try:
        metrics = runner.test()
        return dict(metrics=metrics, **(hook.results if hook else {}))
    finally:
        # Ranks leave together once tested, also when rank 0 failed writing
        # the files: a rank exiting while rank 0 still writes aborts gloo
        # ("terminate called without an active exception").
        if dist.is_available() and dist.is_initialized() and (
                metrics is not None or getattr(hook, 'tested', False)):
            dist.barrier()
