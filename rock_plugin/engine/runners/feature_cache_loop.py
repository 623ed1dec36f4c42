"""``FeatureCacheTrainLoop``: approximate head training on cached views."""
import time
from typing import List, Optional

import torch
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS
from torch.utils.data import BatchSampler

from rock_plugin.utils.model_wrappers import bare_model
from rock_plugin.utils.progress import track

from ..mmengine_internals import count_epoch, count_iter
from .feature_cache_keys import why_not_exact


@LOOPS.register_module()
class FeatureCacheTrainLoop(EpochBasedTrainLoop):
    """Train only the head on features of ``num_views`` cached views per image.

    **Approximate, opt-in** (``configs/rock_b4_featcache.py``): the frozen
    backbone + neck run once on ``num_views`` augmented views of each image;
    each epoch trains the head on one random cached view per image, in the
    sampler's order: milliseconds an epoch, but fewer distinct crops than
    the recipe (exact when the training pipeline has no random transform:
    ``configs/rock_quickstart_dihedral.py``). One process only;
    ``--resume`` draws the views again.

    Args:
        runner, dataloader, max_epochs, val_begin, val_interval,
            dynamic_intervals: As :class:`EpochBasedTrainLoop` (the
            dataloader's workers are never started).
        num_views (int): Augmented views cached per image. Defaults to 8.
        feature_batch_size (int, optional): Images per backbone pass when
            caching. Defaults to the dataloader's batch size.
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
        self.cache_seconds = 0.0  # spent computing the cached features

    @torch.no_grad()
    def build_cache(self) -> None:
        """Run the pipeline ``num_views`` times, the backbone on each view."""
        from mmengine.dataset import pseudo_collate
        model = bare_model(self.runner.model)
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
        if getattr(model.data_preprocessor, 'batch_augments', None):
            raise ValueError('FeatureCacheTrainLoop cannot cache batch '
                             'augments (mixup/cutmix)')
        dataset = self.dataloader.dataset
        size = self.feature_batch_size or self.dataloader.batch_size or 1
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        views, samples = [], [None] * len(dataset)
        for view in range(self.num_views):
            batches = []  # per batch: the feature tuple of every level
            # minutes at 8 backbone passes an image: a bar on a terminal
            for first in track(range(0, len(dataset), size),
                               f'caching training features, view {view + 1}'
                               f'/{self.num_views}'):
                idxs = range(first, min(first + size, len(dataset)))
                data = model.data_preprocessor(
                    pseudo_collate([dataset[i] for i in idxs]), False)
                batches.append(tuple(model.extract_feat(data['inputs'])))
                if view == 0:
                    samples[first:first + len(idxs)] = data['data_samples']
            views.append([torch.cat(level) for level in zip(*batches)])
        model.train(was_training)
        self._feats = [torch.stack(level) for level in zip(*views)]
        self._samples = samples
        self.cache_seconds = time.perf_counter() - start
        how = ('exact: the pipeline has no random transform'
               if self._pipeline_is_exact() else
               'approximate mode: the head trains on these fixed views, '
               'not on a fresh augmentation every epoch')
        print_log(f'FeatureCacheTrainLoop: {self.num_views} view(s) x '
                  f'{len(dataset)} images cached in '
                  f'{self.cache_seconds:.1f} s ({how})', logger='current')

    def _pipeline_is_exact(self) -> bool:
        return why_not_exact(self.dataloader.dataset) is None

    def exact_neck_features(self, dataset):
        """``((features, ...), labels)``: the cached neck outputs of
        ``dataset`` (same images and pipeline, no random transform), or
        None. ``OpenSetCalibrationHook``'s bank reuses them instead of a
        second backbone pass (8 an image in rock_quickstart_dihedral.py)."""
        own = self.dataloader.dataset
        if self._feats is None or not self._pipeline_is_exact() or \
                len(dataset) != len(own) or \
                repr(getattr(dataset, 'pipeline', None)) != repr(own.pipeline):
            return None
        if any(dataset.get_data_info(i).get('img_path') !=
               own.get_data_info(i).get('img_path') for i in range(len(own))):
            return None
        labels = [int(sample.gt_label) for sample in self._samples]
        return tuple(level[0] for level in self._feats), labels

    def run_epoch(self) -> None:
        """One epoch over the cached features."""
        # DistSamplerSeedHook sets the sampler's epoch in this hook.
        self.runner.call_hook('before_train_epoch')
        if self._feats is None:
            self.build_cache()  # counted in the first epoch's time
        self.runner.model.train()
        batches = list(BatchSampler(
            self.dataloader.sampler, self.dataloader.batch_size or 1,
            getattr(self.dataloader, 'drop_last', False)))
        for idx, batch in enumerate(batches):
            views = torch.randint(self.num_views, (len(batch), ))
            index = torch.tensor(batch)
            feats = tuple(level[views.to(level.device),
                                index.to(level.device)]
                          for level in self._feats)
            data_batch = dict(inputs=None,
                              data_samples=[self._samples[i] for i in batch])
            self.run_cached_iter(idx, data_batch, feats)
        self.runner.call_hook('after_train_epoch')
        count_epoch(self)

    def run_cached_iter(self, idx: int, data_batch: dict, feats) -> None:
        """``train_step`` with the backbone + neck output given."""
        self.runner.call_hook('before_train_iter', batch_idx=idx,
                              data_batch=data_batch)
        model = bare_model(self.runner.model)
        optim_wrapper = self.runner.optim_wrapper
        with optim_wrapper.optim_context(model):
            losses = model.head.loss(feats, data_batch['data_samples'])
        parsed, log_vars = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        self.runner.call_hook('after_train_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=log_vars)
        count_iter(self)
