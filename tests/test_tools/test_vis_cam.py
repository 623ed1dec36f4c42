"""Grad-CAM through the frozen backbone: rock_plugin.visualization.cam and
tools/vis_cam.py."""
import os.path as osp

import numpy as np
import pytest
import torch

from conftest import DEMO_DATA, REPO, run_tool


@pytest.fixture(scope='module')
def quick_cam(quickstart_model):
    from rock_plugin.apis.inferencer import RockInferencer
    from rock_plugin.visualization.cam import RockCAM
    inferencer = RockInferencer(quickstart_model['config'],
                                quickstart_model['checkpoint'])
    return RockCAM(inferencer, 'gradcam')


def _square_half(path, side):
    import cv2
    img = cv2.imread(path)
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return img[:, :s // 2] if side == 'left' else img[:, s // 2:]


def _left_mass(cam):
    return cam[:, :cam.shape[1] // 2].sum() / max(cam.sum(), 1e-12)


def test_cam_follows_the_target_class_on_a_two_rock_image(quick_cam):
    from rock_plugin.apis.inferencer import list_images
    inferencer = quick_cam.inferencer
    classes = inferencer.classes
    # The two classes the model is surest of on their first bundled image.
    firsts = [list_images(osp.join(DEMO_DATA, c))[0] for c in classes]
    sure = [r['scores'][c] for r, c in zip(inferencer(firsts), classes)]
    a, b = np.argsort(sure)[::-1][:2]
    image = np.concatenate([_square_half(firsts[a], 'left'),
                            _square_half(firsts[b], 'right')], axis=1)

    left = quick_cam(('two_rocks', image), target_class=classes[a])
    right = quick_cam(('two_rocks', image), target_class=classes[b])
    assert quick_cam.path == 'fused'  # gradients through the fast path
    assert left['cam'].shape == right['cam'].shape == (260, 260)
    assert left['overlay'].shape == (260, 260, 3)
    assert left['overlay'].dtype == np.uint8
    # The map changes with the class asked about ...
    assert np.abs(left['cam'] - right['cam']).mean() > 0.05
    # ... and each class's map sits on the half that shows that class.
    assert _left_mass(left['cam']) > _left_mass(right['cam']) + 0.1
    assert _left_mass(left['cam']) > 0.5 > _left_mass(right['cam'])
    # Gradients reached the activations only: the weights stay frozen.
    backbone = inferencer.model.backbone
    assert not any(p.requires_grad for p in backbone.parameters())
    assert all(p.grad is None for p in inferencer.model.parameters())
    assert not inferencer.model._backbone_grad


def test_backbone_grad_gives_input_gradients_with_frozen_weights(
        quick_cam):
    model = quick_cam.model
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        reference = model(x, mode='tensor')
    with model.backbone_grad():
        logits = model(x, mode='tensor')
    assert logits.requires_grad  # the head's graph and the backbone's
    # no_grad runs the fused copy on ONNX Runtime, backbone_grad the eager
    # backbone: equal up to float rounding (the ONNX export's 1e-4)
    torch.testing.assert_close(logits.detach(), reference, atol=1e-4,
                               rtol=1e-4)
    with model.backbone_grad():
        inputs = x.clone().requires_grad_()
        model(inputs, mode='tensor')[0, 3].backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
    model.zero_grad(set_to_none=True)
    # Outside the block the frozen backbone builds no graph at all.
    feats = model.extract_feat(x, stage='backbone')
    assert not feats[-1].requires_grad


@pytest.fixture(scope='module')
def b4_checkpoint(tmp_path_factory):
    """configs/rock_b4.py's architecture (EfficientNet-B4, random weights,
    BN statistics measured on noise images like the test's, so activations
    neither vanish nor explode) with a 128 px test crop, saved as a
    checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    import rock_plugin  # noqa: F401  (registries)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'rock_b4.py'))
    cfg.model.backbone.init_cfg = None
    cfg.test_dataloader.dataset.pipeline[1].crop_size = 128
    cfg.test_dataloader.dataset.classes = [f'rock{i}' for i in range(11)]
    folder = tmp_path_factory.mktemp('b4')
    cfg.dump(str(folder / 'b4.py'))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    for m in model.backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.backbone.train()
    with torch.no_grad():  # images like the test's: uniform noise, normalised
        model.backbone(model.data_preprocessor(
            dict(inputs=torch.randint(0, 256, (8, 3, 128, 128))),
            False)['inputs'])
    # Random residual branches make B4 chaotic (float rounding grows to
    # 40 % by layer 6); damped branches (as with zero-init residuals) keep
    # it a well-conditioned function, so fused and plain can be compared.
    for m in model.backbone.modules():
        if getattr(m, 'with_res_shortcut', False):
            m.linear_conv.bn.weight.data *= 0.2
            m.linear_conv.bn.bias.data *= 0.2
    model.eval()
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(
                        classes=cfg.test_dataloader.dataset.classes))),
               folder / 'b4.pth')
    return str(folder / 'b4.py'), str(folder / 'b4.pth')


def test_b4_cam_fused_equals_plain(b4_checkpoint):
    from rock_plugin.apis.inferencer import RockInferencer
    from rock_plugin.visualization.cam import RockCAM
    inferencer = RockInferencer(*b4_checkpoint)
    rng = np.random.default_rng(0)
    image = ('random', rng.integers(0, 255, (160, 200, 3), np.uint8))
    fused = RockCAM(inferencer, 'gradcam')
    plain = RockCAM(inferencer, 'gradcam', fast=False)
    a, b = fused(image), plain(image)  # the predicted class's map
    assert a['target_class'] == b['target_class']
    assert fused.path == 'fused' and plain.path.startswith('plain')
    # the plain run switched the engine off for itself only (plain_forward)
    assert inferencer.model.frozen_engine == 'auto'
    # The same module in both: the fused copy keeps the layer names.
    assert fused.layer_names == plain.layer_names == ['backbone.layers.6']
    assert a['cam'].std() > 0.05  # a real map, not a constant
    np.testing.assert_allclose(a['cam'], b['cam'], atol=1e-4)
    # A layer folded away in the fused copy: the plain backbone, said so.
    folded = RockCAM(inferencer, 'gradcam',
                     target_layers=['backbone.layers.6.bn'])
    folded(image)
    assert folded.path.startswith('plain') and 'folded' in folded.path


def test_vis_cam_tool(quickstart_model, tmp_path):
    from rock_plugin.apis.inferencer import list_images
    folder = tmp_path / 'in'
    folder.mkdir()
    import shutil
    first = list_images(osp.join(DEMO_DATA, 'Chert'))[:2]
    for path in first:
        shutil.copy(path, folder)
    (folder / 'broken.jpg').write_bytes(b'not an image')
    out = tmp_path / 'cams'
    proc = run_tool('tools/vis_cam.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], str(folder),
                    '--method', 'gradcam++', '--target-class', 'Chert',
                    '--out-dir', str(out))
    assert 'fused fast path' in proc.stdout
    assert 'backbone.timm_model.bn2' in proc.stdout
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        osp.basename(p) + '_gradcam++_Chert.png'  # a.jpg_gradcam++_...
        for p in first)
    assert 'skipped' in proc.stderr and 'broken.jpg' in proc.stderr
    import cv2
    overlay = cv2.imread(str(out / written[0]))
    assert overlay.shape == (260, 260, 3)

    proc = run_tool('tools/vis_cam.py', quickstart_model['config'],
                    quickstart_model['checkpoint'], first[0],
                    '--target-class', 'Granite', check=False)
    assert proc.returncode == 2
    assert "--target-class 'Granite': not a class" in proc.stderr
