"""Test-time augmentation the mmpretrain way: ``tta_model`` + ``tta_pipeline``,
swapped in by :func:`tta_config` after checking that the TTA pipeline
prepares images as the (possibly overridden) test pipeline does.
"""
import copy
import logging

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log


def check_tta_pipeline(cfg: Config) -> list:
    """The config's ``tta_pipeline``, checked against its test pipeline.

    Args:
        cfg (Config): With ``tta_pipeline`` and a test dataset pipeline.

    Returns:
        list: The TTA pipeline.

    Raises:
        KeyError: No ``tta_pipeline``.
        ValueError: It does not end in ``TestTimeAug``, or its steps before
            that differ from the test pipeline's before ``PackInputs``.
    """
    source = cfg.filename or 'the config'
    if cfg.get('tta_pipeline') is None:
        raise KeyError(f'tta_pipeline ({source} has none; see '
                       'configs/rock_b4.py for one)')
    tta = [dict(step) for step in cfg.tta_pipeline]
    if not tta or tta[-1].get('type') != 'TestTimeAug':
        raise ValueError(f"{source}: tta_pipeline must end with "
                         "dict(type='TestTimeAug', ...)")
    test = [dict(step) for step in cfg.test_dataloader.dataset.pipeline]
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
    """Wrap ``cfg.model`` in ``tta_model`` and test with ``tta_pipeline``.

    Args:
        cfg (Config): The test config, changed in place.

    Returns:
        Config: ``cfg``.
    """
    from mmpretrain.registry import MODELS

    from rock_plugin.models.classifiers import DihedralMeanClassifier
    from rock_plugin.utils.registry_names import is_registered_subclass
    pipeline = check_tta_pipeline(cfg)
    model = cfg.model
    if is_registered_subclass(MODELS, model, DihedralMeanClassifier) and \
            model.get('views', 8) == 8:
        print_log('--tta: this model already averages its features over the '
                  '8 flips and quarter turns (DihedralMeanClassifier); the '
                  'TTA views add time, not information', logger='current',
                  level=logging.WARNING)
    tta_model = copy.deepcopy(cfg.get('tta_model') or
                              dict(type='LogMeanClsScoreTTA'))
    cfg.model = ConfigDict(**tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = pipeline
    return cfg
