"""Config ``type`` values looked up among registered classes, never
imported: subclasses of the package's models pass their bases' checks."""
import importlib
import os.path as osp

import pytest
from mmengine.config import Config
from mmpretrain.registry import MODELS

import rock_plugin  # noqa: F401
from conftest import REPO, load_tool
from rock_plugin.models import DihedralMeanClassifier, OpenSetLinearClsHead
from rock_plugin.utils.registry_names import (is_registered_subclass,
                                              registered_class, type_name)

DIHEDRAL = osp.join(REPO, 'configs', 'rock_quickstart_dihedral.py')


@pytest.fixture
def my_dihedral():
    """A user's subclass of DihedralMeanClassifier, registered for the
    test only."""

    class MyDihedral(DihedralMeanClassifier):
        pass

    MODELS.register_module(name='MyDihedralForTest', module=MyDihedral)
    yield 'MyDihedralForTest'
    MODELS.module_dict.pop('MyDihedralForTest')


def test_names_scopes_classes_and_dotted_names(monkeypatch):
    assert type_name(dict(type='mmpretrain.OpenSetMLPClsHead')) == \
        'OpenSetMLPClsHead'
    assert type_name(dict(type=DihedralMeanClassifier)) == \
        'DihedralMeanClassifier'
    assert type_name(None) == type_name(dict()) == ''
    assert registered_class(MODELS, dict(type=DihedralMeanClassifier)) is \
        DihedralMeanClassifier
    assert registered_class(MODELS, dict()) is None
    imported = []
    monkeypatch.setattr(importlib, 'import_module',
                        lambda *a, **kw: imported.append(a))
    for node in (dict(type='os.system'), dict(type='builtins.getattr')):
        assert registered_class(MODELS, node) is None
        assert not is_registered_subclass(MODELS, node, object)
    assert imported == []
    assert is_registered_subclass(MODELS, dict(type='OpenSetMLPClsHead'),
                                  OpenSetLinearClsHead)
    assert not is_registered_subclass(MODELS, dict(type='LinearClsHead'),
                                      OpenSetLinearClsHead)


def test_a_dihedral_subclass_gets_the_dihedral_tta_warning_and_refusal(
        my_dihedral, monkeypatch):
    import rock_plugin.apis.tta as tta
    logs = []
    monkeypatch.setattr(tta, 'print_log', lambda msg, **kw: logs.append(msg))
    cfg = Config.fromfile(DIHEDRAL)
    cfg.model.type = my_dihedral
    tta.tta_config(cfg)
    assert len(logs) == 1 and 'add time, not information' in logs[0]
    flags = load_tool('_config_flags')
    cfg = Config.fromfile(DIHEDRAL)
    cfg.model.type = my_dihedral
    with pytest.raises(ValueError, match='not with DihedralMeanClassifier'):
        flags.set_frozen_stages(cfg, 5)
    cfg.model.type = 'os.system'
    with pytest.raises(ValueError, match="needs model.type='RockImage"):
        flags.set_frozen_stages(cfg, 5)


def test_a_rock_dataset_subclass_gets_classes_from_data_and_folds(tmp_path):
    """A user's registered subclass of RockDataset: the class count follows
    its folders, and cross-validation (and the open-set study) accept it;
    a dotted name that is not registered is refused, never imported."""
    from mmpretrain.registry import DATASETS

    from conftest import make_class_folders
    from rock_plugin.datasets import RockDataset

    class MyRocks(RockDataset):
        pass

    DATASETS.register_module(name='MyRocksForTest', module=MyRocks)
    try:
        data = make_class_folders(str(tmp_path / 'data'))  # 3 classes
        train_tool = load_tool('train')
        flags = load_tool('_config_flags')
        for kind, count in (('MyRocksForTest', 3), ('os.system', None)):
            cfg = train_tool.build_config(train_tool.parse_args([
                osp.join(REPO, 'configs', 'rock_quickstart.py')]))
            cfg.train_dataloader.dataset.update(type=kind, data_root=data)
            assert flags.set_classes_from_data(cfg) == count
            assert cfg.model.head.num_classes == (count or 11)
            if count:
                from mmengine.registry import DefaultScope
                # a caller with another scope (restored after the block)
                with DefaultScope.overwrite_default_scope('mmengine'):
                    scopes = _scope_names()
                    files, labels, classes = load_tool(
                        'cross_validate')._pool(cfg)
                    # the pool leaves the caller's scope as it was (mmengine
                    # restores deep copies: compare names, not objects)
                    assert _scope_names() == scopes
                assert len(classes) == 3 and len(files) == len(labels) > 0
            else:
                with pytest.raises(ValueError, match='of type RockDataset'):
                    load_tool('cross_validate')._pool(cfg)
    finally:
        DATASETS.module_dict.pop('MyRocksForTest')


def _scope_names():
    """The default scope instances' names and scopes, the current last."""
    from mmengine.registry import DefaultScope
    return ([(k, v.scope_name) for k, v in
             DefaultScope._instance_dict.items()],
            DefaultScope.get_current_instance().scope_name)
