"""``CachedFeatureValLoop``: validate a frozen backbone once, then only the head."""
import hashlib
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import ValLoop
from mmengine.runner.amp import autocast
from mmengine.runner.loops import _parse_losses, _update_losses
from mmpretrain.registry import LOOPS

#: Transforms whose output depends only on their input (no randomness).
DETERMINISTIC_TRANSFORMS = frozenset({
    'LoadRockImage', 'LoadImageFromFile', 'LoadImageFromNDArray',
    'EfficientNetCenterCrop', 'CenterCrop', 'ResizeEdge', 'Resize',
    'PackInputs', 'PackClsInputs', 'PackMultiTaskInputs',
    'ToTensor', 'ImageToTensor', 'Transpose', 'Normalize', 'ToNumpy',
    'Collect', 'Pad', 'CropToBox', 'LoadAnnotations', 'NumpyToPIL',
    'PILToNumpy',
})


def tensor_checksum(tensors: Sequence[torch.Tensor]) -> Tuple:
    """An exact fingerprint of tensor contents: a BLAKE2 hash of their bytes.

    Any changed bit changes it, whether the tensor was written through
    ``.data`` (which version counters miss), ``load_state_dict``, an EMA swap
    or an optimizer step. About 50 ms for EfficientNet-B4's 19M values on
    CPU (GPU tensors are copied to the host first).

    Args:
        tensors: Parameters and buffers.

    Returns:
        tuple: The hex digest, then shape, dtype, device and
        ``requires_grad`` of every tensor.
    """
    digest = hashlib.blake2b(digest_size=16)
    meta = []
    for t in tensors:
        meta.append((tuple(t.shape), str(t.dtype), str(t.device),
                     bool(t.requires_grad)))
        flat = t.detach()
        if flat.device.type != 'cpu':
            flat = flat.cpu()
        flat = flat.contiguous().reshape(-1)
        if flat.dtype in (torch.bfloat16, torch.float16):
            flat = flat.view(torch.int16)
        elif not flat.is_complex() and flat.dtype.itemsize == 1 and \
                flat.dtype not in (torch.uint8, torch.int8, torch.bool):
            flat = flat.view(torch.uint8)  # float8 types
        digest.update(memoryview(flat.numpy()).cast('B'))
    return (digest.hexdigest(), ) + tuple(meta)


@LOOPS.register_module()
class CachedFeatureValLoop(ValLoop):
    """A ``ValLoop`` that computes a frozen backbone's features only once.

    With a frozen backbone (and neck) and a deterministic validation pipeline,
    every validation feeds the same images through the same fixed function;
    only the head changes. The first validation runs the model exactly as
    ``ValLoop`` does (data preprocessor, ``extract_feat``, ``head.predict``)
    and keeps the features of each batch; later validations run only
    ``head.predict`` on them and hand the evaluator the same data samples, so
    every metric equals the uncached run's exactly. The same hooks are called
    in the same order with the same batch indices (``data_batch`` keeps its
    ``data_samples``; its ``inputs`` pixels are dropped to save memory unless
    ``keep_inputs`` or an enabled visualization hook needs them).

    The cache is recomputed whenever anything upstream of the head could have
    changed: a content checksum of the backbone's (and cached neck's) weights
    and buffers, their ``requires_grad`` flags, the data preprocessor's
    buffers, the dataset (object, length, pipeline, each sample's path, label,
    file size and mtime) and the fp16 setting. It is not used at all (plain
    ``ValLoop`` behaviour, logged once) when the model is not an
    ``ImageClassifier``-like model, a backbone parameter is trainable, the
    pipeline holds a transform not known to be deterministic, or the sampler
    shuffles. In distributed runs every rank caches its own shard and all
    ranks agree on whether to use the cache.

    Args:
        runner: The runner.
        dataloader: Validation dataloader (or its config).
        evaluator: Evaluator (or its config).
        fp16 (bool): Autocast as ``ValLoop`` does. Defaults to False.
        enabled (bool): False makes this exactly ``ValLoop``.
        keep_inputs (bool, optional): Keep the image tensors of cached
            batches for hooks. None (default): only when an enabled
            ``VisualizationHook`` is registered.
        extra_deterministic (Sequence[str]): More transform type names to
            treat as deterministic.

    Example:
        >>> val_cfg = dict(type='CachedFeatureValLoop')
    """

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 enabled: bool = True, keep_inputs: Optional[bool] = None,
                 extra_deterministic: Sequence[str] = ()):
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        self.enabled = enabled
        self.keep_inputs = keep_inputs
        self.deterministic = DETERMINISTIC_TRANSFORMS | set(
            extra_deterministic)
        self._cache: Optional[List[dict]] = None
        self._key = None
        self._logged_reason = None
        #: How many validations ran the backbone / used the cache.
        self.feature_passes = 0
        self.cached_passes = 0

    # ------------------------------------------------------------------
    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _ineligible(self, model) -> Optional[str]:
        """Why the cache cannot be used, or None."""
        if not self.enabled:
            return 'disabled (enabled=False)'
        for attr in ('extract_feat', 'head', 'data_preprocessor', 'backbone'):
            if getattr(model, attr, None) is None:
                return f'the model has no {attr}'
        if not hasattr(model.head, 'predict'):
            return 'the head has no predict()'
        if any(p.requires_grad for p in model.backbone.parameters()):
            return 'the backbone is trainable (its features change every ' \
                'epoch)'
        batch_augments = getattr(model.data_preprocessor, 'batch_augments',
                                 None)
        if batch_augments is not None:
            return 'the data preprocessor has batch augments'
        sampler = getattr(self.dataloader, 'sampler', None)
        if getattr(sampler, 'shuffle', False):
            return 'the validation sampler shuffles'
        pipeline = getattr(self.dataloader.dataset, 'pipeline', None)
        transforms = getattr(pipeline, 'transforms', None)
        if transforms is None:
            return 'the dataset has no pipeline to check'
        for t in transforms:
            name = type(t).__name__
            if name not in self.deterministic:
                return (f'the pipeline holds {name}, not known to be '
                        'deterministic (add it with extra_deterministic=[...] '
                        'if it is)')
        return None

    def _stage(self, model) -> str:
        neck = getattr(model, 'neck', None)
        if neck is not None and any(p.requires_grad
                                    for p in neck.parameters()):
            return 'backbone'
        return 'neck'

    def _fingerprint(self, model, stage: str):
        tensors = list(model.backbone.parameters()) + \
            list(model.backbone.buffers())
        if stage == 'neck' and getattr(model, 'neck', None) is not None:
            tensors += list(model.neck.parameters()) + \
                list(model.neck.buffers())
        tensors += list(model.data_preprocessor.buffers())
        dataset = self.dataloader.dataset
        files = []
        for i in range(len(dataset)):
            info = dataset.get_data_info(i) if hasattr(
                dataset, 'get_data_info') else {}
            path = info.get('img_path')
            stat = None
            if path and os.path.exists(path):
                st = os.stat(path)
                stat = (st.st_size, st.st_mtime_ns)
            files.append((path, str(info.get('gt_label')), stat))
        return (stage, self.fp16, id(dataset), len(dataset),
                repr(getattr(dataset, 'pipeline', None)), hash(tuple(files)),
                tensor_checksum(tensors))

    def _keep_inputs(self) -> bool:
        if self.keep_inputs is not None:
            return self.keep_inputs
        for hook in getattr(self.runner, 'hooks', []):
            if type(hook).__name__ == 'VisualizationHook' and \
                    getattr(hook, 'enable', False):
                return True
        return False

    def _log_once(self, message: str, level=logging.INFO) -> None:
        if message != self._logged_reason:
            self._logged_reason = message
            print_log(f'CachedFeatureValLoop: {message}', logger='current',
                      level=level)

    # ------------------------------------------------------------------
    def run(self) -> dict:
        """Launch validation (cached when possible)."""
        model = self._model()
        reason = self._ineligible(model)
        if reason is not None:
            self._log_once(f'feature cache off: {reason}; running the plain '
                           'ValLoop')
            self._cache = self._key = None
            return super().run()

        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        self.val_loss.clear()

        stage = self._stage(model)
        key = self._fingerprint(model, stage)
        hit = torch.tensor(
            int(self._cache is not None and key == self._key))
        all_reduce(hit, op='min')  # every rank recomputes if one must
        if bool(hit.item()):
            self.cached_passes += 1
            self._run_cached(model, stage)
        else:
            if self._cache is not None and hasattr(model, 'reset_fast_path'):
                model.reset_fast_path()  # weights changed behind its back?
            self.feature_passes += 1
            self._run_and_cache(model, stage)
            self._key = key
            self._log_once(f'features of {len(self.dataloader.dataset)} '
                           f'validation images cached at the {stage} output; '
                           'later validations run only the head')

        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        if self.val_loss:
            metrics.update(_parse_losses(self.val_loss, 'val'))
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    @torch.no_grad()
    def _run_and_cache(self, model, stage: str) -> None:
        keep = self._keep_inputs()
        self._cache = None
        cache = []
        for idx, data_batch in enumerate(self.dataloader):
            self.runner.call_hook('before_val_iter', batch_idx=idx,
                                  data_batch=data_batch)
            with autocast(enabled=self.fp16):
                # What model.val_step -> predict does, split at the head.
                data = model.data_preprocessor(data_batch, False)
                feats = model.extract_feat(data['inputs'], stage=stage)
                samples = data.get('data_samples')
                entry = dict(
                    feats=feats,
                    samples=[s.clone() for s in samples]
                    if samples is not None else None,
                    batch={k: (v if k != 'inputs' or keep else None)
                           for k, v in data_batch.items()})
                outputs = self._head_predict(model, stage, feats, samples)
            cache.append(entry)
            self._process(idx, data_batch, outputs)
        self._cache = cache

    @torch.no_grad()
    def _run_cached(self, model, stage: str) -> None:
        for idx, entry in enumerate(self._cache):
            data_batch = entry['batch']
            self.runner.call_hook('before_val_iter', batch_idx=idx,
                                  data_batch=data_batch)
            samples = entry['samples']
            samples = [s.clone() for s in samples] \
                if samples is not None else None
            with autocast(enabled=self.fp16):
                outputs = self._head_predict(model, stage, entry['feats'],
                                             samples)
            self._process(idx, data_batch, outputs)

    @staticmethod
    def _head_predict(model, stage: str, feats, samples):
        if stage == 'backbone' and getattr(model, 'with_neck', False):
            feats = model.neck(feats)
        return model.head.predict(feats, samples)

    def _process(self, idx: int, data_batch, outputs) -> None:
        outputs, self.val_loss = _update_losses(outputs, self.val_loss)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_val_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=outputs)

    def clear_cache(self) -> None:
        """Forget the cached features (the next validation recomputes)."""
        self._cache = self._key = None
