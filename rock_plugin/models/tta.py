"""Test-time augmentation the mmpretrain way: ``tta_model`` + ``tta_pipeline``.

The configs declare ``tta_model = dict(type='AverageClsScoreTTA')`` and a
``tta_pipeline`` ending in mmcv's ``TestTimeAug``; ``--tta`` in
``tools/test.py``, ``tools/predict.py`` and ``tools/cross_validate.py``
swaps them in with :func:`tta_config`, as mmpretrain's ``tools/test.py``
does, and checks that the TTA pipeline prepares images as the test pipeline
does (a child config that changes ``test_pipeline`` but inherits its base's
``tta_pipeline`` would otherwise test at the base's image size).
"""
import copy

from mmengine.config import Config, ConfigDict


def _steps(pipeline) -> list:
    return [dict(step) for step in pipeline]


def check_tta_pipeline(cfg: Config) -> list:
    """The config's ``tta_pipeline``, checked against its test pipeline.

    Args:
        cfg (Config): A config with ``tta_pipeline`` and
            ``test_dataloader.dataset.pipeline``.

    Returns:
        list: The TTA pipeline.

    Raises:
        KeyError: No ``tta_pipeline``.
        ValueError: It does not end in ``TestTimeAug``, or its steps before
            that differ from the test pipeline's steps before ``PackInputs``.
    """
    source = cfg.filename or 'the config'
    if cfg.get('tta_pipeline') is None:
        raise KeyError(f'tta_pipeline ({source} has none; see '
                       'configs/rock_b4.py for one)')
    tta = _steps(cfg.tta_pipeline)
    if not tta or tta[-1].get('type') != 'TestTimeAug':
        raise ValueError(f"{source}: tta_pipeline must end with "
                         "dict(type='TestTimeAug', ...)")
    test = _steps(cfg.test_dataloader.dataset.pipeline)
    if test and 'Pack' in str(test[-1].get('type')):
        test = test[:-1]
    if tta[:-1] != test:
        raise ValueError(
            f'{source}: tta_pipeline does not prepare images as the test '
            f'pipeline does ({tta[:-1]} vs {test}). A config that changes '
            'test_pipeline must define tta_pipeline again after it, e.g. '
            'tta_pipeline = [*test_pipeline[:-1], dict(type=\'TestTimeAug\', '
            '...)]')
    return tta


def tta_config(cfg: Config) -> Config:
    """Wrap the model in ``tta_model`` and test with ``tta_pipeline``.

    Args:
        cfg (Config): The test config (changed in place and returned).

    Returns:
        Config: ``cfg`` with ``model = tta_model(module=model)`` and the test
        dataset's pipeline replaced by the checked ``tta_pipeline``.

    Example:
        >>> cfg = tta_config(Config.fromfile('configs/rock_quickstart.py'))
        >>> cfg.model.type
        'AverageClsScoreTTA'
    """
    pipeline = check_tta_pipeline(cfg)
    tta_model = copy.deepcopy(cfg.get('tta_model') or
                              dict(type='AverageClsScoreTTA'))
    cfg.model = ConfigDict(**tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = pipeline
    return cfg
