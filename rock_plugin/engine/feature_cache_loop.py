"""``FeatureCacheTrainLoop``: opt-in linear probing on cached augmented views.

NOT the default recipe and NOT the same maths: see the class docstring.
"""
import time
from typing import List, Optional

import torch
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS


@LOOPS.register_module()
class FeatureCacheTrainLoop(EpochBasedTrainLoop):
    """Train only the head on features of ``num_views`` cached views per image.

    **Approximate, opt-in mode** (``configs/rock_b4_featcache.py``). The
    default recipe draws a fresh random crop/flip of every image each epoch
    and runs the frozen backbone on it. Here, before the first epoch, the
    training pipeline (random crop, flip...) is run ``num_views`` times per
    image and the frozen backbone + neck turn every view into a feature
    vector once; each epoch then visits the images in the sampler's order, in
    batches of the dataloader's batch size, and trains the head (same loss,
    optimizer, batch size and schedule) on one randomly chosen cached view
    per image. An epoch costs a few milliseconds instead of a backbone pass
    per image; the price is augmentation diversity (``num_views`` crops per
    image instead of one new crop per epoch), so results differ from the
    default recipe's. Validation is unaffected.

    Requirements: a frozen backbone and neck (no trainable parameter before
    the head), a data preprocessor without batch augments, one process (no
    distributed training). The views are drawn in the main process from the
    seeded global generators; ``--resume`` draws them again.

    Args:
        runner: The runner.
        dataloader: Training dataloader (its dataset, sampler and batch size
            are used; its workers are never started).
        max_epochs (int): Epochs.
        val_begin (int): First epoch to validate.
        val_interval (int): Validation interval.
        dynamic_intervals: As ``EpochBasedTrainLoop``.
        num_views (int): Augmented views cached per image. Defaults to 8.
        feature_batch_size (int, optional): Images per backbone pass when
            caching (any size gives the same features: BN is frozen).
            Defaults to the dataloader's batch size.

    Example:
        >>> train_cfg = dict(type='FeatureCacheTrainLoop', max_epochs=100,
        ...                  val_interval=1, num_views=8)
    """

    def __init__(self, runner, dataloader, max_epochs: int,
                 val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals=None, num_views: int = 8,
                 feature_batch_size: Optional[int] = None):
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        if num_views < 1:
            raise ValueError(f'num_views must be at least 1, got {num_views}')
        self.num_views = num_views
        self.feature_batch_size = feature_batch_size
        self._feats: Optional[List[torch.Tensor]] = None  # per level [K,N,..]
        self._samples: Optional[list] = None
        #: Seconds spent computing the cached features.
        self.cache_seconds = 0.0

    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _check(self, model) -> None:
        if get_world_size() > 1:
            raise RuntimeError('FeatureCacheTrainLoop runs in one process '
                               'only; train without a launcher')
        for attr in ('backbone', 'head', 'extract_feat'):
            if getattr(model, attr, None) is None:
                raise TypeError(f'FeatureCacheTrainLoop needs an '
                                f'ImageClassifier-like model (no {attr})')
        parts = [model.backbone] + ([model.neck] if getattr(
            model, 'neck', None) is not None else [])
        if any(p.requires_grad for part in parts for p in part.parameters()):
            raise ValueError('FeatureCacheTrainLoop needs a frozen backbone '
                             'and neck (e.g. freeze_backbone=True)')
        if getattr(model.data_preprocessor, 'batch_augments', None) is not None:
            raise ValueError('FeatureCacheTrainLoop cannot cache batch '
                             'augments (mixup/cutmix) of the data '
                             'preprocessor')

    @torch.no_grad()
    def build_cache(self) -> None:
        """Run the training pipeline ``num_views`` times per image and the
        frozen backbone + neck on every view."""
        from mmengine.dataset import pseudo_collate
        model = self._model()
        self._check(model)
        dataset = self.dataloader.dataset
        size = self.feature_batch_size or self.dataloader.batch_size or 1
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        levels: Optional[List[List[torch.Tensor]]] = None
        samples = [None] * len(dataset)
        for view in range(self.num_views):
            view_feats: Optional[List[List[torch.Tensor]]] = None
            for first in range(0, len(dataset), size):
                idxs = range(first, min(first + size, len(dataset)))
                batch = pseudo_collate([dataset[i] for i in idxs])
                data = model.data_preprocessor(batch, False)
                feats = model.extract_feat(data['inputs'])
                if view_feats is None:
                    view_feats = [[] for _ in feats]
                for level, f in zip(view_feats, feats):
                    level.append(f.detach())
                if view == 0:
                    for i, s in zip(idxs, data['data_samples']):
                        samples[i] = s
            stacked = [torch.cat(level) for level in view_feats]
            if levels is None:
                levels = [[] for _ in stacked]
            for level, f in zip(levels, stacked):
                level.append(f)
        model.train(was_training)
        self._feats = [torch.stack(level) for level in levels]
        self._samples = samples
        self.cache_seconds = time.perf_counter() - start
        print_log(f'FeatureCacheTrainLoop: {self.num_views} view(s) x '
                  f'{len(dataset)} images cached in '
                  f'{self.cache_seconds:.1f} s (approximate mode: the head '
                  'trains on these fixed views, not on a fresh augmentation '
                  'every epoch)', logger='current')

    def _batches(self) -> List[List[int]]:
        indices = list(iter(self.dataloader.sampler))
        size = self.dataloader.batch_size or 1
        batches = [indices[i:i + size] for i in range(0, len(indices), size)]
        if getattr(self.dataloader, 'drop_last', False) and batches and \
                len(batches[-1]) < size:
            batches.pop()
        return batches

    def run_epoch(self) -> None:
        """One epoch over the cached features."""
        # DistSamplerSeedHook sets the sampler's epoch in this hook.
        self.runner.call_hook('before_train_epoch')
        if self._feats is None:
            self.build_cache()  # counted in the first epoch's time
        self.runner.model.train()
        for idx, batch in enumerate(self._batches()):
            views = torch.randint(self.num_views, (len(batch), ))
            index = torch.tensor(batch)
            feats = tuple(level[views.to(level.device),
                                index.to(level.device)]
                          for level in self._feats)
            data_batch = dict(inputs=None,
                              data_samples=[self._samples[i] for i in batch])
            self.run_cached_iter(idx, data_batch, feats)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_cached_iter(self, idx: int, data_batch: dict, feats) -> None:
        """``train_step`` with the backbone + neck output given."""
        self.runner.call_hook('before_train_iter', batch_idx=idx,
                              data_batch=data_batch)
        model = self._model()
        optim_wrapper = self.runner.optim_wrapper
        with optim_wrapper.optim_context(model):
            losses = model.head.loss(feats, data_batch['data_samples'])
        parsed, log_vars = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        self.runner.call_hook('after_train_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=log_vars)
        self._iter += 1
