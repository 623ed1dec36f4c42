"""configs/rock_quickstart_finetune.py and ``--frozen-stages N``: the quick
start with the backbone's top stage trained at a tenth of the lr; killed
and resumed, the same run."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import (REPO, kill_config, load_tool, run_tool,
                      train_killable)

# builds by type name: mmpretrain's registry (conftest.mmpretrain_scope)
pytestmark = pytest.mark.usefixtures('mmpretrain_scope')

QUICK = osp.join(REPO, 'configs', 'rock_quickstart.py')
FINETUNE = osp.join(REPO, 'configs', 'rock_quickstart_finetune.py')
OPTIONS = ('--cfg-options', 'train_cfg.max_epochs=2',
           'model.head.num_classes=3', 'data_preprocessor.num_classes=3')
PREFIX = tuple(f'backbone.timm_model.{m}' for m in (
    'conv_stem.', 'bn1.', *(f'blocks.{i}.' for i in range(6))))
# the stem and stages 0-5 of Lite2 (frozen_stages=5)


def test_finetune_config_and_flag_are_the_quickstart_with_the_top_trained():
    train_tool = load_tool('train')
    quick = train_tool.build_config(train_tool.parse_args([QUICK]))
    tuned = train_tool.build_config(train_tool.parse_args([FINETUNE]))
    assert tuned.model.frozen_stages == 5 and 'frozen_stages' not in \
        quick.model
    assert tuned.optim_wrapper.paramwise_cfg.custom_keys == {
        'backbone': dict(lr_mult=0.1)}
    # everything else is the quick start's
    for key in ('train_dataloader', 'val_dataloader', 'param_scheduler',
                'train_cfg', 'default_hooks', 'custom_hooks'):
        assert tuned[key] == quick[key], key
    assert tuned.optim_wrapper.optimizer == quick.optim_wrapper.optimizer
    flag = train_tool.build_config(train_tool.parse_args(
        [QUICK, '--frozen-stages', '5']))
    assert flag.model == tuned.model
    assert flag.optim_wrapper == tuned.optim_wrapper


def test_frozen_stages_refuses_the_dihedral_config_saying_why():
    train_tool = load_tool('train')
    dihedral = osp.join(REPO, 'configs', 'rock_quickstart_dihedral.py')
    with pytest.raises(ValueError, match='not with DihedralMeanClassifier, '
                       'whose features come from a wholly frozen backbone.*'
                       'rock_quickstart_finetune.py'):
        train_tool.build_config(train_tool.parse_args(
            [dihedral, '--frozen-stages', '5']))


def test_a_stage_out_of_range_is_one_error_line(tmp_path):
    proc = run_tool('tools/train.py', QUICK, '--frozen-stages', '9',
                    '--work-dir', str(tmp_path / 'w'), check=False)
    assert proc.returncode == 2
    assert 'error: model.frozen_stages must be an integer from -1 (the ' \
        'stem) to 7' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_finetune_killed_and_resumed_is_the_uninterrupted_run(tiny_data,
                                                              tmp_path):
    """2 epochs in one go against epoch 1, a kill during epoch 2 and
    --resume: the same weights and history; the frozen prefix (weights and
    BN statistics) left as the ImageNet weights, the top stage trained."""
    reference = str(tmp_path / 'reference')
    train_killable(FINETUNE, tiny_data, reference, *OPTIONS)
    config = kill_config(tmp_path, FINETUNE, [('train_iter', 2, 1)])
    work = str(tmp_path / 'run')
    train_killable(config, tiny_data, work, *OPTIONS, killed=True)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    log = train_killable(config, tiny_data, work, *OPTIONS,
                         resume=True).stdout
    assert 'feature cache off: the backbone is trainable' in log
    a = torch.load(osp.join(work, 'epoch_2.pth'), weights_only=True)
    b = torch.load(osp.join(reference, 'epoch_2.pth'), weights_only=True)
    diff = max((a['state_dict'][k].float() - v.float()).abs().max().item()
               for k, v in b['state_dict'].items())
    assert diff <= 1e-6
    with open(osp.join(work, 'history.csv')) as f, \
            open(osp.join(reference, 'history.csv')) as g:
        assert f.read() == g.read()
    # the backbone's trained tensors in lr x 0.1 groups after the head's
    groups = b['optimizer']['param_groups']
    assert groups[0]['lr'] == pytest.approx(0.0625)
    assert any(g['lr'] == pytest.approx(0.00625) for g in groups)
    from rock_plugin.models.backbones.lite_weights import (
        lite_checkpoint, load_state_dict_file)
    imagenet = load_state_dict_file(lite_checkpoint(
        None, model_name='tf_efficientnet_lite2'))
    state = {k[len('backbone.timm_model.'):]: v
             for k, v in b['state_dict'].items() if k.startswith(PREFIX)}
    assert len(state) > 200 and all(torch.equal(v, imagenet[k])
                                    for k, v in state.items()
                                    if k in imagenet)
    assert 'blocks.5.0.bn1.running_var' in imagenet
    for k in ('blocks.6.0.conv_pw.weight', 'bn2.running_mean'):
        assert not torch.equal(
            b['state_dict']['backbone.timm_model.' + k], imagenet[k])
    saved = Config.fromfile(osp.join(reference,
                                     'rock_quickstart_finetune.py'))
    assert saved.model.frozen_stages == 5
    # The open-set bank of epoch 2 (its frozen prefix cached since epoch 1,
    # only the trained stages rerun) is what the epoch-2 model gives.
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS
    saved.model.data_preprocessor = saved.data_preprocessor
    model = MODELS.build(saved.model).eval()
    load_checkpoint(model, osp.join(reference, 'epoch_2.pth'),
                    map_location='cpu', logger='silent')
    train = DATASETS.build(dict(saved.train_dataloader.dataset,
                                pipeline=saved.val_dataloader.dataset
                                .pipeline))
    with torch.no_grad():
        data = model.data_preprocessor(
            pseudo_collate([train[i] for i in range(len(train))]), False)
        feats = model.head.pre_logits(model.extract_feat(data['inputs']))
    bank = b['state_dict']['head.bank'].float()
    assert bank.shape == feats.shape
    cos = torch.nn.functional.cosine_similarity(bank, feats, dim=1)
    assert cos.min() > 0.999, cos.min()
