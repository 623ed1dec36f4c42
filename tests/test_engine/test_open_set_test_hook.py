"""``OpenSetTestHook`` refuses what it cannot report, before the test epoch
(tools/test.py --unknown / --embedding end to end:
tests/test_tools/test_test_open_set.py)."""
import importlib.util
import os
import re
from types import SimpleNamespace

import pytest
import torch

from conftest import make_image


def _runner(head):
    return SimpleNamespace(model=SimpleNamespace(head=head),
                           cfg=SimpleNamespace(load_from='old/best.pth'))


def test_unknown_folder_must_hold_images(tmp_path):
    import rock_plugin  # noqa: F401
    from rock_plugin.engine.hooks import OpenSetTestHook
    from rock_plugin.utils.errors import DataError
    empty = tmp_path / 'empty'
    (empty / 'sub').mkdir(parents=True)
    (empty / 'sub' / 'notes.txt').write_text('no image')
    make_image(str(empty / '.hidden' / 'x.png'))  # hidden: not listed
    with pytest.raises(DataError, match=f'^{re.escape(str(empty))}: no '
                       'images in this folder or below it'):
        OpenSetTestHook(unknown_dir=str(empty))
    with pytest.raises(NotADirectoryError, match='not a folder'):
        OpenSetTestHook(unknown_dir=str(tmp_path / 'missing'))
    make_image(str(empty / 'sub' / 'deeper' / 'a.PNG'))
    hook = OpenSetTestHook(unknown_dir=str(empty))
    assert hook.unknown_files == [os.path.join(str(empty), 'sub', 'deeper',
                                               'a.PNG')]


def test_embedding_method_is_checked():
    import rock_plugin  # noqa: F401
    from rock_plugin.engine.hooks import OpenSetTestHook
    with pytest.raises(ValueError, match="'tsne', 'umap'"):
        OpenSetTestHook(embedding='pca')
    if importlib.util.find_spec('umap') is None:
        with pytest.raises(ImportError, match='umap-learn'):
            OpenSetTestHook(embedding='umap')


def test_a_model_without_a_bank_or_features_is_refused(tmp_path):
    import rock_plugin  # noqa: F401
    from mmpretrain.registry import MODELS

    from rock_plugin.engine.hooks import OpenSetTestHook
    make_image(str(tmp_path / 'u' / 'a.png'))
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        head = MODELS.build(dict(type='OpenSetLinearClsHead',
                                 num_classes=3, in_channels=8))
    hook = OpenSetTestHook(unknown_dir=str(tmp_path / 'u'))
    with pytest.raises(ValueError, match=r'^old/best.pth: the model has no '
                       'feature bank.*OpenSetLinearClsHead'):
        hook.before_test(_runner(head))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        plain = MODELS.build(dict(type='LinearClsHead', num_classes=3,
                                  in_channels=8))
    with pytest.raises(ValueError, match=r'its head is LinearClsHead'):
        hook.before_test(_runner(plain))
    head.set_open_set(1.5, torch.randn(4, 8), torch.arange(4) % 3,
                      [0., 1., 0., 1.], 2.0)
    hook.before_test(_runner(head))  # a bank: fine
    with pytest.raises(ValueError, match='keep_features=True'):
        OpenSetTestHook(embedding='tsne').before_test(_runner(head))
    head.keep_features = True
    OpenSetTestHook(embedding='tsne').before_test(_runner(head))
