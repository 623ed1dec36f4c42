"""``RockImageClassifier(frozen_stages=N)``: the stem and stages <= N frozen
at build time (weights and BN statistics), the rest trained; the frozen
prefix runs on the frozen engine and the output is the plain forward's."""
import copy
import os.path as osp

import pytest
import torch
from mmpretrain.structures import DataSample

from conftest import REPO

LITE0 = dict(type='EfficientNetLite', model_name='tf_efficientnet_lite0',
             weights='package', out_indices=(4, 5, 6))
B0 = dict(type='EfficientNet', arch='b0', out_indices=(3, 6))


def _classifier(backbone, frozen_stages, frozen_engine='auto', **extra):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    import rock_plugin  # noqa: F401
    torch.manual_seed(0)
    lite = backbone['type'] == 'EfficientNetLite'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='RockImageClassifier', freeze_backbone=True,
            frozen_stages=frozen_stages, frozen_engine=frozen_engine,
            backbone=backbone, **extra,
            neck=dict(type='ConcatGlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3,
                      in_channels=(112 + 192 + 320 + 1280) if lite
                      else 40 + 1280)))
    if lite:
        model.backbone.init_weights()  # the packaged ImageNet weights
    else:  # random BN statistics: folding them is exercised
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _frozen_names(model):
    return {n for n, p in model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize('backbone', [LITE0, B0], ids=['lite0', 'b0'])
def test_stage_chain_is_the_backbone_forward(backbone):
    from rock_plugin.models.backbones import StageChain
    model = _classifier(backbone, None).eval()
    chain = StageChain(model.backbone)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model.backbone(x)
        for k in range(1, len(chain) + 1):
            out = chain.rest(k, chain.prefix(k)(x))
            assert len(out) == len(ref)
            assert all(torch.equal(a, b) for a, b in zip(out, ref))


def test_stem_and_stages_up_to_n_are_frozen_at_build_and_stay_in_eval():
    model = _classifier(LITE0, 5)
    assert not model.freeze_backbone  # frozen_stages decides
    frozen = _frozen_names(model)
    assert 'backbone.timm_model.conv_stem.weight' in frozen
    assert any('.blocks.5.' in n for n in frozen)
    assert not any('.blocks.6.' in n or 'conv_head' in n or 'head.fc' in n
                   for n in frozen)
    model.train()
    net = model.backbone.timm_model
    assert not net.bn1.training and not net.blocks[5].training
    assert net.blocks[6].training and net.bn2.training and model.head.training
    # the last stage: the whole backbone, as freeze_backbone=True
    whole = _classifier(LITE0, 7)
    assert whole.freeze_backbone and not any(
        p.requires_grad for p in whole.backbone.parameters())
    # B4/B0 (mmpretrain) count the stem as stage 0, as their out_indices
    b0 = _classifier(B0, 5)
    assert all(n.startswith(('backbone.layers.6.', 'head.'))
               for n, p in b0.named_parameters() if p.requires_grad)
    with pytest.raises(ValueError, match='from -1 .* to 7'):
        _classifier(LITE0, 8)
    with pytest.raises(TypeError, match='frozen_stages supports'):
        _classifier(dict(type='ResNet', depth=18), 2)


@pytest.mark.parametrize('backbone,n', [(LITE0, 5), (LITE0, 3), (B0, 4)],
                         ids=['lite0-5', 'lite0-3', 'b0-4'])
def test_fast_prefix_gives_the_plain_forward(backbone, n):
    """The prefix alone on ONNX Runtime / the eager fused copy: the maps the
    rest and the multi-scale neck read, so outputs equal the plain ones."""
    plain = _classifier(backbone, n, frozen_engine=None).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = plain.backbone(x)
        logits = plain(x, mode='tensor')
    for engine in ('auto', 'eager'):
        fast = copy.deepcopy(plain)
        fast.frozen_engine = engine
        with torch.no_grad():
            out = fast.extract_feat(x, stage='backbone')
            fast_logits = fast(x, mode='tensor')
        assert fast._fast_state is not None  # the prefix engine ran
        assert fast._fast_state[1].engine == (
            'onnxruntime' if engine == 'auto' else 'eager')
        for a, b in zip(out, ref):
            scale = b.abs().max().item()
            assert (a - b).abs().max().item() <= 1e-5 * scale
        assert (fast_logits - logits).abs().max().item() <= 1e-4
    # gradients reach the input through the frozen prefix (Grad-CAM)
    x.requires_grad_()
    with plain.backbone_grad():
        plain(x, mode='tensor')[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_training_changes_only_the_top_at_its_lr_mult():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    model = _classifier(LITE0, 5)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, dict(
            constructor='TrainableParamsOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
            paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)})))
    groups = wrapper.optimizer.param_groups
    in_optimizer = {id(p) for g in groups for p in g['params']}
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[i] not in _frozen_names(model) for i in in_optimizer)
    assert len(in_optimizer) == sum(p.requires_grad
                                    for p in model.parameters())
    for group in groups:
        backbone = names[id(group['params'][0])].startswith('backbone.')
        assert group['lr'] == pytest.approx(0.01 if backbone else 0.1)
    assert groups[0]['lr'] == 0.1  # the logged lr: the head's, not 0.01
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
    engines = []
    for step in range(2):
        x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(
            step))
        wrapper.update_params(model.loss(x, samples)['loss'])
        engines.append(model._fast_state[1])
    # the prefix ran on its engine, built once: the trained top is not in it
    assert engines[0] is engines[1] and engines[0].engine == 'onnxruntime'
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen_prefix = [k for k in before if k.startswith((
        'backbone.timm_model.conv_stem', 'backbone.timm_model.bn1',
        *(f'backbone.timm_model.blocks.{i}.' for i in range(6))))]
    assert frozen_prefix and not changed & set(frozen_prefix)  # BN stats too
    assert 'backbone.timm_model.blocks.6.0.conv_pw.weight' in changed
    assert 'backbone.timm_model.bn2.running_mean' in changed  # trains BN
    assert 'head.fc.weight' in changed


def test_checkpoints_load_across_frozen_and_finetuned_models():
    """Same keys as the quick start's model: its checkpoints load into the
    fine-tuning model and back (strict)."""
    from mmengine.config import Config
    model_cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'rock_quickstart_finetune.py')).model
    assert model_cfg.frozen_stages == 5 and model_cfg.freeze_backbone
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        tuned = MODELS.build(model_cfg)
        frozen = MODELS.build(dict(model_cfg, frozen_stages=None))
    assert frozen.freeze_backbone and not tuned.freeze_backbone
    tuned.load_state_dict(frozen.state_dict(), strict=True)
    frozen.load_state_dict(tuned.state_dict(), strict=True)
