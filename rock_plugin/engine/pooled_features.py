"""``PooledFeatureCache``: the pooled features of a data set's images,
computed once per model state (``OpenSetCalibrationHook``'s bank)."""
import torch
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log

from rock_plugin.utils.progress import track


class PooledFeatureCache:
    """The head's pre-logits of every image of a data set, in order.

    A frozen backbone gives the same pooled features every epoch: they are
    kept, and only the head's ``pre_logits`` run again.
    With ``frozen_stages`` the frozen prefix's maps are kept, and each call
    after :meth:`drop_trained` reruns only the trained stages.

    Example:
        >>> features = PooledFeatureCache()
        >>> feats, labels = features(runner, model, train_set, 'train')
    """

    def __init__(self):
        self._cache = {}
        self._datasets = {}  # key -> (dataset, its pipeline's repr)

    def drop_trained(self) -> None:
        """Forget all but the frozen prefixes' maps (the trained stages
        changed)."""
        self._cache = {k: v for k, v in self._cache.items()
                       if k.endswith('/prefix')}

    def __call__(self, runner, model, dataset, key: str, source=None):
        """``(features (N, C), labels (N,))`` of ``dataset`` (its own
        pipeline, in order). The neck's output is kept under ``key`` until
        :meth:`drop_trained`; the head's ``pre_logits`` run on every call
        (a head with a hidden layer changes them each epoch). ``source``:
        an object whose ``exact_neck_features(dataset)`` may already hold
        the neck's output (``FeatureCacheTrainLoop``), or None."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                necks = self._cache.get(key)
                if necks is None:
                    necks = self._cache[key] = self._necks(
                        runner, model, dataset, key, source)
                    self._datasets[key] = (dataset, repr(getattr(
                        dataset, 'pipeline', None)))
                feats = [model.head.pre_logits(neck).float().cpu()
                         for neck, _ in necks]
        finally:
            model.train(was_training)
        labels = [label for _, batch in necks for label in batch]
        return torch.cat(feats), torch.tensor(labels)

    def exact_neck_features(self, dataset):
        """``((features, ...), labels)``: the kept neck outputs of this very
        ``dataset`` object (pipeline unchanged), every image in order, or
        None. ``CachedFeatureValLoop`` reuses them instead of a second
        backbone pass over the validation images."""
        for key, (kept, pipeline) in self._datasets.items():
            if kept is dataset and key in self._cache and pipeline == repr(
                    getattr(dataset, 'pipeline', None)):
                necks = self._cache[key]
                levels = tuple(torch.cat(level) for level in zip(
                    *(neck for neck, _ in necks)))
                return levels, [y for _, batch in necks for y in batch]
        return None

    def _necks(self, runner, model, dataset, key: str, source) -> list:
        """``(neck output, labels)`` per batch, from the kept prefix maps
        when there are some, else from ``source`` when it holds them."""
        batches = self._cache.get(key + '/prefix')
        share = getattr(source, 'exact_neck_features', None)
        if batches is None and share is not None:
            shared = share(dataset)
            if shared is not None:
                print_log(f'open-set features of the {key} images: '
                          f"{type(source).__name__}'s, no backbone pass",
                          logger='current')
                return [shared]
        if batches is None:
            batches = self._first_pass(runner, model, dataset, key)
            if any(b[0] is not None for b in batches):
                self._cache[key + '/prefix'] = batches
        necks = []
        for maps, neck, labels in batches:
            if neck is None:
                x = model.backbone_after_prefix(maps)
                neck = model.neck(x) if model.with_neck else x
            necks.append((neck, labels))
        return necks

    @staticmethod
    def _first_pass(runner, model, dataset, key: str) -> list:
        """``(prefix maps or None, neck output or None, labels)`` per
        batch."""
        loader = runner.val_dataloader if runner.val_loop is not None \
            else runner.train_dataloader
        # A plain loader of our own: its own generator (no draw from the
        # global RNG) and every image on every rank.
        dl = torch.utils.data.DataLoader(
            dataset, batch_size=getattr(loader, 'batch_size', None) or 16,
            shuffle=False, collate_fn=pseudo_collate,
            num_workers=min(2, getattr(loader, 'num_workers', 0)),
            generator=torch.Generator())
        prefix = getattr(model, 'frozen_prefix_maps', None)
        batches = []
        for batch in track(dl, f'open-set features, {key} images'):
            data = model.data_preprocessor(batch, False)
            labels = [int(s.gt_label) for s in data['data_samples']]
            maps = prefix(data['inputs']) if prefix is not None else None
            if maps is not None:
                batches.append((tuple(maps), None, labels))
            else:
                batches.append((None, model.extract_feat(data['inputs']),
                                labels))
        return batches
