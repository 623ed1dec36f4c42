"""Export a trained rock classifier to ONNX and check it against PyTorch."""
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .inferencer import (ONNX_INPUT_FORMAT, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME,
                         RockInferencer, list_images, onnx_input)

DEFAULT_TOLERANCE = 1e-4
#: Graph outputs of a model with a feature bank (the first is the scores).
ONNX_OPEN_SET_OUTPUTS = ('score', 'novelty', 'neighbors', 'neighbor_sims')


class OnnxParityError(ValueError):
    """ONNX Runtime's scores differ from PyTorch's beyond the tolerance."""


def _scores_module(model):
    """``model`` as ``RGB float 0-255 NCHW -> class scores``, for export:
    normalisation and channel order go inside the graph, so a deployment
    feeds the cropped RGB pixels and needs no mean/std."""
    import torch
    import torch.nn.functional as F
    prep = model.data_preprocessor
    for attr in ('to_rgb', '_enable_normalize'):
        if not hasattr(prep, attr):
            raise ValueError(f'cannot export: the data preprocessor '
                             f'{type(prep).__name__} is not a '
                             f'ClsDataPreprocessor (no {attr})')
    from mmpretrain.models.heads import MultiLabelClsHead
    multilabel = isinstance(model.head, MultiLabelClsHead)

    class Scores(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            # The input is RGB; a model trained with to_rgb=False saw the
            # pipeline's BGR, so give it BGR back.
            self.flip = not prep.to_rgb
            self.normalize = prep._enable_normalize
            if self.normalize:
                self.register_buffer('mean', prep.mean.detach().clone()
                                     .view(1, -1, 1, 1).float())
                self.register_buffer('std', prep.std.detach().clone()
                                     .view(1, -1, 1, 1).float())

        def forward(self, x):
            if self.flip:
                x = x.flip(1)
            if self.normalize:
                x = (x - self.mean) / self.std
            feats = self.model.extract_feat(x)
            head = self.model.head
            if open_set:
                pre = head.pre_logits(feats)
                out = head.open_set_outputs(pre, head.fc(pre))
                return tuple(out[k] for k in ONNX_OPEN_SET_OUTPUTS)
            logits = head(feats)
            # What head.predict gives as pred_score.
            return torch.sigmoid(logits) if multilabel else \
                F.softmax(logits, dim=1)

    # calibrated scores, novelty and nearest training images in the graph
    open_set = getattr(model.head, 'has_bank', False)
    return Scores().eval()


def _export_graph(module, path: str, shape: Tuple[int, int],
                  opset: Optional[int], exporter: str) -> None:
    import torch
    outputs = [ONNX_OUTPUT_NAME] + (
        list(ONNX_OPEN_SET_OUTPUTS[1:]) if getattr(
            module.model.head, 'has_bank', False) else [])
    args = dict(f=path, input_names=[ONNX_INPUT_NAME], output_names=outputs)
    dummy = (torch.rand(2, 3, *shape) * 255, )
    if exporter == 'dynamo':
        # torch's maintained exporter. external_data=False embeds the
        # weights: one .onnx file (fine below protobuf's 2 GB; B4 is ~70 MB)
        # instead of an .onnx + .onnx.data pair that breaks when copied.
        batch = torch.export.Dim('batch', min=1, max=4096)
        torch.onnx.export(module, dummy, dynamo=True, external_data=False,
                          verbose=False, dynamic_shapes={'x': {0: batch}},
                          opset_version=opset or 18, **args)
    elif exporter == 'torchscript':
        # The deprecated exporter, a fallback for what dynamo cannot trace.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            # Conv2dAdaptivePadding's size arithmetic is traced as constants:
            # right, since H x W is fixed and only the batch is dynamic.
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.onnx.export(module, dummy, dynamo=False,
                              dynamic_axes={name: {0: 'batch'} for name in
                                            [ONNX_INPUT_NAME] + outputs},
                              opset_version=opset or 17, **args)
    else:
        raise ValueError(f"exporter must be 'dynamo' or 'torchscript', got "
                         f'{exporter!r}')


def _check_images(paths: Optional[Sequence[str]], limit: int = 16
                  ) -> List[Any]:
    """Images for the parity check: given files/folders (at most ``limit``,
    spread over each folder), else three generated ones."""
    found: List[Any] = []
    for item in paths or []:
        if osp.isdir(item):
            images = list_images(item)
            if not images:
                raise FileNotFoundError(f'{item}: no images in this folder')
            step = max(1, len(images) // limit)
            found += images[::step][:limit]
        elif osp.isfile(item):
            found.append(item)
        else:
            raise FileNotFoundError(f'{item}: no such image or folder')
    if found:
        return found[:limit]
    # Smooth colour fields with texture, at a microscope photo's aspect, so
    # the crop and resize paths see realistic pixels.
    rng = np.random.default_rng(0)
    generated = []
    for i in range(3):
        y, x = np.mgrid[0:240, 0:300]
        img = np.stack([(x * (i + 1)) % 256, (y * 2 + 40 * i) % 256,
                        (x + y) % 256], -1).astype(np.float32)
        img += rng.normal(0, 25, img.shape)
        generated.append((f'generated_{i}',
                          np.clip(img, 0, 255).astype(np.uint8)))
    return generated


def _resize_to(samples: List[dict], shape: Tuple[int, int]) -> List[dict]:
    # Only when ``shape`` overrides the pipeline: both models then get the
    # same resized pixels.
    import cv2
    import torch
    out = []
    for s in samples:
        img = s['inputs'].permute(1, 2, 0).numpy()
        img = cv2.resize(img, (shape[1], shape[0]),
                         interpolation=cv2.INTER_AREA)
        if img.ndim == 2:
            img = img[..., None]
        out.append(dict(s, inputs=torch.from_numpy(
            np.ascontiguousarray(img.transpose(2, 0, 1)))))
    return out


def load_check_images(inferencer: RockInferencer,
                      images: Sequence[Any]) -> List[dict]:
    """The parity-check images through the test pipeline (packed samples
    pass unchanged), so that an unreadable one fails before the export."""
    return [item if isinstance(item, dict) and 'inputs' in item
            else inferencer.load(item, i)[1] for i, item in enumerate(images)]


def check_parity(inferencer: RockInferencer, onnx_path: str,
                 images: Sequence[Any], shape: Tuple[int, int],
                 tolerance: float = DEFAULT_TOLERANCE) -> Dict[str, Any]:
    """Compare the ONNX model ``onnx_path`` in ONNX Runtime, at batch 1 and
    3, with a PyTorch-backend ``inferencer`` on the same packed ``images``
    (paths, ``(name, BGR array)`` pairs or packed samples, at the model's
    input ``shape`` ``(H, W)``; RGB float for ONNX Runtime, so the exported
    normalisation and channel order are checked too). A score difference
    beyond ``tolerance`` (or a bad shape or batch) is an ``OnnxParityError``.
    Returns ``max_abs_diff``, ``images``, ``batch_sizes``, ``top1_agree``
    and ``tolerance``."""
    import onnxruntime as ort
    samples = load_check_images(inferencer, images)
    if tuple(samples[0]['inputs'].shape[-2:]) != tuple(shape):
        samples = _resize_to(samples, shape)
    reference = inferencer._forward_pytorch(samples)
    session = ort.InferenceSession(onnx_path,
                                   providers=['CPUExecutionProvider'])
    def run(batch):
        return session.run(None, {ONNX_INPUT_NAME: onnx_input(batch)})[0]

    # Batch 1 (each image alone) and batch 3 (a dynamic-batch run that does
    # not equal the export's dummy batch of 2); fewer images are repeated.
    triple = [samples[i % len(samples)] for i in range(max(3, len(samples)))]
    runs = {1: np.concatenate([run([s]) for s in samples])}
    try:
        runs[3] = np.concatenate([run(triple[i:i + 3]) for i in range(
            0, len(triple), 3)])[:len(samples)]  # triple[:n] is samples
    except Exception as exc:  # ORT's own error types
        raise OnnxParityError(f'{onnx_path}: batch 3 failed in ONNX Runtime '
                              f'({str(exc).splitlines()[0][:300]}): the '
                              'batch axis is not dynamic') from None
    diff = 0.0
    for batch, scores in runs.items():
        if scores.shape != reference.shape:
            raise OnnxParityError(
                f'{onnx_path}: batch {batch} gave scores of shape '
                f'{scores.shape}, PyTorch {reference.shape}')
        diff = max(diff, float(np.abs(scores - reference).max()))
    agree = float(np.mean(runs[1].argmax(1) == reference.argmax(1)))
    report = dict(max_abs_diff=diff, images=len(samples),
                  batch_sizes=sorted(runs), top1_agree=agree,
                  tolerance=tolerance)
    if not diff <= tolerance:  # also catches NaN
        raise OnnxParityError(
            f'{onnx_path}: ONNX Runtime scores differ from PyTorch by '
            f'{diff:.3g} (> {tolerance:g}) on {len(samples)} images; the '
            'export is not faithful, do not deploy it')
    return report


def export_onnx(config, checkpoint: str, out: str = 'model.onnx',
                shape: Optional[Sequence[int]] = None,
                opset: Optional[int] = None, device: str = 'cpu',
                check_images: Optional[Sequence[str]] = None,
                tolerance: float = DEFAULT_TOLERANCE,
                exporter: str = 'dynamo') -> Dict[str, Any]:
    """Export the classifier to one self-contained ONNX file (RGB pixels
    0-255, dynamic batch, to softmax scores; classes, input contract,
    normalisation and test pipeline in its metadata). It becomes ``out``
    only once ONNX Runtime matched PyTorch within ``tolerance``; a failed
    one is kept as ``<out>.failed.onnx``.

    Args:
        config (str | Config): The training config.
        checkpoint (str): The ``.pth`` file (loaded with weights_only=True).
        out (str): Destination ``.onnx``.
        shape (Sequence[int], optional): ``(H, W)`` (default: the pipeline's).
        opset (int, optional): Default 18 (dynamo), 17 (torchscript).
        device (str): Where PyTorch runs for the export and the check.
        check_images (Sequence[str], optional): Image files/folders for the
            parity check (default: three generated images).
        tolerance (float): Largest allowed score difference.
        exporter (str): ``'dynamo'`` or ``'torchscript'``.

    Returns:
        dict: The :func:`check_parity` report plus ``path``, ``shape``,
        ``classes``, ``size_bytes`` and ``exporter``.

    Example:
        >>> export_onnx('configs/rock_b4.py', 'best.pth', 'rock_b4.onnx')
    """
    import onnx
    import torch

    import rock_plugin
    if not str(out).endswith('.onnx'):
        raise ValueError(f'{out}: the output file must end in .onnx')
    images = _check_images(check_images)  # fail fast on a bad path
    inferencer = RockInferencer(config, checkpoint, device=device)
    try:
        pipeline_shape = inferencer.input_size()
    except ValueError:
        if shape is None:
            raise
        pipeline_shape = None
    shape = tuple(int(v) for v in (pipeline_shape if shape is None
                                   else shape))
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f'shape must be two positive numbers H W, got '
                         f'{shape}')
    images = load_check_images(inferencer, images)
    if pipeline_shape is not None and pipeline_shape != shape:
        warnings.warn(f'shape {shape} differs from the test pipeline\'s '
                      f'{pipeline_shape}: predicting with '
                      "backend='onnxruntime' needs a config whose pipeline "
                      'gives the same size')
    module = _scores_module(inferencer.model).to(device)
    if not inferencer.classes:
        inferencer.classes = [f'class_{i}' for i in
                              range(inferencer.model.head.num_classes)]

    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(out) + '.',
                               suffix='.onnx', dir=folder)
    os.close(fd)
    try:
        with torch.no_grad():
            _export_graph(module, tmp, shape, opset, exporter)
        cfg, prep = inferencer.cfg, inferencer.model.data_preprocessor
        normalisation = dict(model_channel_order='RGB' if prep.to_rgb else
                             'BGR (the graph flips the RGB input)')
        if prep._enable_normalize:
            normalisation.update(
                mean=[float(v) for v in prep.mean.flatten()],
                std=[float(v) for v in prep.std.flatten()])
        metadata = dict(
            classes=json.dumps(inferencer.classes),
            num_classes=str(len(inferencer.classes)),
            input_name=ONNX_INPUT_NAME, input_format=ONNX_INPUT_FORMAT,
            input_shape=json.dumps(['batch', 3, shape[0], shape[1]]),
            input_dtype='float32', input_channel_order='RGB',
            normalisation=json.dumps(normalisation),
            output=f'{ONNX_OUTPUT_NAME}: float32 N x {len(inferencer.classes)}'
            ' softmax scores, class order as in "classes"' + (
                '; novelty: float32 N (above open_set.unknown_threshold: '
                'unknown rock); neighbors: int64 N x k indices of the '
                'nearest training images (open_set.bank_files); '
                'neighbor_sims: their cosine similarities'
                if inferencer.open_set else ''),
            test_pipeline=json.dumps(cfg.test_dataloader.dataset.pipeline,
                                     default=str),
            source_config=osp.basename(cfg.filename or str(config)),
            source_checkpoint=osp.basename(checkpoint),
            producer=f'rock_plugin {rock_plugin.__version__}, torch '
            f'{torch.__version__} ({exporter} exporter)')
        if inferencer.open_set:
            info = inferencer.open_set
            threshold = info['threshold']
            metadata['open_set'] = json.dumps(dict(
                temperature=info['temperature'],
                unknown_threshold=threshold if np.isfinite(threshold)
                else None, bank_labels=info['bank_labels'],
                bank_files=info['bank_files'] or []))
        graph = onnx.load(tmp)
        onnx.helper.set_model_props(graph, metadata)
        graph.doc_string = ('Rock thin-section classifier (rock_plugin). '
                            f'Input: {ONNX_INPUT_FORMAT}. Output: '
                            + metadata['output'])
        onnx.checker.check_model(graph)
        # save_as_external_data=False: keep it one file (see _export_graph).
        onnx.save(graph, tmp, save_as_external_data=False)
        report = check_parity(inferencer, tmp, images, shape, tolerance)
    except OnnxParityError:
        os.replace(tmp, osp.splitext(out)[0] + '.failed.onnx')
        raise
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    os.replace(tmp, out)
    report.update(path=out, shape=shape, classes=inferencer.classes,
                  size_bytes=osp.getsize(out), exporter=exporter)
    return report
