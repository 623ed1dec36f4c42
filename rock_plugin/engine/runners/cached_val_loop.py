"""``CachedFeatureValLoop``: validate a frozen backbone once, then the head."""
from typing import List, Optional, Sequence

import torch
from mmengine.dist import all_reduce
from mmengine.logging import print_log
from mmengine.runner import ValLoop
from mmengine.runner.amp import autocast
from mmpretrain.registry import LOOPS

from rock_plugin.models.accel import use_frozen_engine
from rock_plugin.utils.model_wrappers import bare_model

from ..mmengine_internals import parse_losses, update_losses
from .feature_cache_keys import (DETERMINISTIC_TRANSFORMS, dataset_files_key,
                                 shared_rows, tensor_checksum, why_not_exact)


@LOOPS.register_module()
class CachedFeatureValLoop(ValLoop):
    """A ``ValLoop`` that computes a frozen backbone's features only once.

    Later validations run only ``head.predict`` on the cached features (same
    hooks and data samples: exact metrics). The cache is rebuilt when
    weights, preprocessing, dataset or files change, and off (plain
    ``ValLoop``, logged once) for a trainable backbone, a possibly random
    pipeline or a shuffling sampler.

    Args:
        runner, dataloader, evaluator, fp16: As :class:`ValLoop`.
        enabled (bool): False makes this exactly ``ValLoop``.
        keep_inputs (bool, optional): Keep cached batches' images for hooks.
            None: if an enabled ``VisualizationHook`` is registered.
        extra_deterministic (Sequence[str]): More deterministic transforms.
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
        self._key = self._logged_reason = None
        #: How many validations ran the backbone / used the cache.
        self.feature_passes = self.cached_passes = 0
        self.computed_batches = 0

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
        if getattr(model.data_preprocessor, 'batch_augments',
                   None) is not None:
            return 'the data preprocessor has batch augments'
        if getattr(getattr(self.dataloader, 'sampler', None), 'shuffle',
                   False):
            return 'the validation sampler shuffles'
        return why_not_exact(
            self.dataloader.dataset, self.deterministic,
            hint=' (add it with extra_deterministic=[...] if it is)')

    def _fingerprint(self, model, stage: str):
        tensors = [*model.backbone.parameters(), *model.backbone.buffers()]
        if stage == 'neck' and getattr(model, 'neck', None) is not None:
            tensors += [*model.neck.parameters(), *model.neck.buffers()]
        tensors += list(model.data_preprocessor.buffers())
        return (stage, self.fp16) + dataset_files_key(
            self.dataloader.dataset) + (tensor_checksum(tensors), )

    def _log_once(self, message: str) -> None:
        if message != self._logged_reason:
            self._logged_reason = message
            print_log(f'CachedFeatureValLoop: {message}', logger='current')

    def run(self) -> dict:
        """Launch validation (cached when possible): ``ValLoop.run`` step
        for step, the dataloader pass replaced (see
        :mod:`rock_plugin.engine.mmengine_internals` for why not
        ``super().run()``)."""
        model = bare_model(self.runner.model)
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
        neck = getattr(model, 'neck', None)
        stage = 'backbone' if neck is not None and any(
            p.requires_grad for p in neck.parameters()) else 'neck'
        key = self._fingerprint(model, stage)
        hit = torch.tensor(int(self._cache is not None and key == self._key))
        all_reduce(hit, op='min')  # every rank recomputes if one must
        if bool(hit.item()):
            self.cached_passes += 1
            self._run_batches(model, stage, cached=True)
        else:
            self.feature_passes += 1
            # only the first pass: a later one means something changed
            # that a hook's features may not have seen
            shared = self._shared_features(stage) \
                if self.feature_passes == 1 else None
            # a stale cache: weights may have changed behind the model's
            # back (through .data), so its frozen engine starts afresh
            with use_frozen_engine(model, rebuild=self._cache is not None):
                self._run_batches(model, stage, cached=False, shared=shared)
            self._key = key
            self._log_once(
                f'features of {len(self.dataloader.dataset)} validation '
                f'images cached at the {stage} output' +
                (f" ({type(shared[0]).__name__}'s: no backbone pass)"
                 if shared is not None and not self.computed_batches
                 else '') +
                '; later validations run only the head')
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        if self.val_loss:
            metrics.update(parse_losses(self.val_loss, 'val'))
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    def _shared_features(self, stage: str):
        """``(hook, ((features, ...), labels))``: the neck outputs of this
        loop's dataset that a hook already computed
        (``OpenSetCalibrationHook``, just before the first validation, in
        fp32), else None."""
        if stage != 'neck' or self.fp16:
            return None
        for hook in getattr(self.runner, 'hooks', []):
            share = getattr(hook, 'exact_neck_features', None)
            found = share(self.dataloader.dataset) if callable(share) \
                else None
            if found is not None:
                return hook, found
        return None

    @torch.no_grad()
    def _run_batches(self, model, stage: str, cached: bool,
                     shared=None) -> None:
        """Validate on the cached features, or run the model and cache."""
        batches, cache, keep = self._cache, None, self.keep_inputs
        if not cached:
            batches, cache, self._cache = self.dataloader, [], None
            self.computed_batches = 0  # batches the backbone ran on
        if keep is None:
            keep = any(type(hook).__name__ == 'VisualizationHook'
                       and getattr(hook, 'enable', False)
                       for hook in getattr(self.runner, 'hooks', []))
        for idx, item in enumerate(batches):
            data_batch = item['batch'] if cached else item
            self.runner.call_hook('before_val_iter', batch_idx=idx,
                                  data_batch=data_batch)
            with autocast(enabled=self.fp16):
                if cached:
                    feats, samples = item['feats'], _clone(item['samples'])
                else:  # model.val_step -> predict, split at the head
                    data = model.data_preprocessor(data_batch, False)
                    samples = data.get('data_samples')
                    feats = None if shared is None else shared_rows(
                        shared[1], samples)
                    if feats is None:
                        self.computed_batches += 1
                        feats = model.extract_feat(data['inputs'],
                                                   stage=stage)
                    cache.append(dict(
                        feats=feats, samples=_clone(samples),
                        batch={k: (v if k != 'inputs' or keep else None)
                               for k, v in data_batch.items()}))
                if stage == 'backbone' and getattr(model, 'with_neck', False):
                    feats = model.neck(feats)
                outputs = model.head.predict(feats, samples)
            outputs, self.val_loss = update_losses(outputs, self.val_loss)
            self.evaluator.process(data_samples=outputs, data_batch=data_batch)
            self.runner.call_hook('after_val_iter', batch_idx=idx,
                                  data_batch=data_batch, outputs=outputs)
        if cache is not None:
            self._cache = cache


def _clone(samples):
    return None if samples is None else [s.clone() for s in samples]
