"""``TrainingPreviewHook``: pictures of what training sees and predicts."""
import os.path as osp
from concurrent.futures import Future
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.utils.background import BackgroundExecutor
from rock_plugin.utils.model_wrappers import bare_model
from rock_plugin.visualization.previews import (draw_train_batch,
                                                draw_val_predictions,
                                                tensors_to_rgb)


def _is_image_batch(inputs) -> bool:
    first = inputs[0] if isinstance(inputs, (list, tuple)) and inputs \
        else inputs
    return isinstance(first, torch.Tensor) and first.dim() in (3, 4) and \
        first.shape[-3] == 3


def _classes(loader) -> list:
    metainfo = getattr(getattr(loader, 'dataset', None), 'metainfo', None)
    return list((metainfo or {}).get('classes') or [])


def _name(classes: list, label) -> str:
    index = int(label.item() if hasattr(label, 'item') else label)
    return classes[index] if index < len(classes) else str(index)


@HOOKS.register_module()
class TrainingPreviewHook(Hook):
    """Write ``train_batch0.jpg`` and ``val_predictions.jpg`` to the work dir.

    As Ultralytics does: the first augmented batch as the model gets it,
    labelled; after each validation where a prediction changed, a grid of
    ``max_images`` validation images (every k-th) with predicted class,
    score and true class, mistakes framed red. Drawn on a background thread
    (rank 0 only); a failed drawing is logged, never stops training.

    Args:
        enabled (bool): False turns both pictures off. Defaults to True.
        max_images (int): Images per picture. Defaults to 16.
        tile_size (int): Longer image side in pixels. Defaults to 192.
    """
    priority = 'LOW'

    def __init__(self, enabled: bool = True, max_images: int = 16,
                 tile_size: int = 192):
        self.enabled = enabled
        self.max_images = max_images
        self.tile_size = tile_size
        self._executor: Optional[BackgroundExecutor] = None
        self._pending: List[Future] = []
        self._train_drawn = False
        self._val_images: Dict[int, np.ndarray] = {}  # sample index ->
        self._val_labels: Dict[int, tuple] = {}  # -> (pred, score, gt)
        self._seen, self._stride = 0, 1
        self._val_drawn: Optional[list] = None

    def _active(self) -> bool:
        return self.enabled and is_main_process()

    def _submit(self, runner, draw, filename: str, *args) -> None:
        from rock_plugin.visualization.annotate import save_image
        path = osp.join(runner.work_dir, filename)
        if self._executor is None:
            # a data loader's fork waits for its drawings (utils/background)
            self._executor = BackgroundExecutor('TrainingPreviewHook')
        # One done() per future: asked twice, one finishing in between
        # would fall out of both lists and its error go unreported.
        done, pending = [], []
        for future in self._pending:
            (done if future.done() else pending).append(future)
        self._pending = pending
        self._report(runner, done)
        self._pending.append(
            self._executor.submit(lambda: save_image(path, draw(*args))))

    @staticmethod
    def _report(runner, futures) -> None:
        for future in futures:
            try:
                future.result()
            except Exception as exc:  # a picture must never kill a run
                runner.logger.warning(f'TrainingPreviewHook: {exc!r}')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._train_drawn or not self._active() or not data_batch:
            return
        self._train_drawn = True
        inputs = data_batch.get('inputs')
        if inputs is None or not _is_image_batch(inputs):
            runner.logger.info('TrainingPreviewHook: the training loop feeds '
                               'no images (feature cache); no train_batch0')
            return
        model = bare_model(runner.model)
        prep, n = model.data_preprocessor, self.max_images
        with torch.no_grad():
            # What the model gets (channel order, normalisation), undone.
            x = prep(dict(inputs=inputs[:n]), False)['inputs'].float()
            if getattr(prep, '_enable_normalize', False):
                x = x * prep.std.view(1, -1, 1, 1) + \
                    prep.mean.view(1, -1, 1, 1)
        classes = _classes(runner.train_dataloader)
        labels = [_name(classes, s.gt_label)
                  for s in data_batch.get('data_samples', [])[:n]]
        self._submit(runner, draw_train_batch, 'train_batch0.jpg',
                     tensors_to_rgb(x, getattr(prep, 'to_rgb', False)),
                     labels, self.tile_size)

    def before_val_epoch(self, runner) -> None:
        self._val_labels, self._seen = {}, 0
        # Every k-th sample, to span the classes of a set sorted by class.
        size = len(getattr(runner.val_dataloader, 'dataset', ()))
        self._stride = max(1, size // (self.max_images * get_world_size()))

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        if not self._active() or not outputs:
            return
        # The cached validation loop keeps only its first pass's pixels;
        # the pipeline is deterministic, so they stand for every later one.
        inputs = (data_batch or {}).get('inputs')
        has_images = inputs is not None and _is_image_batch(inputs)
        for i, sample in enumerate(outputs):
            index, self._seen = self._seen, self._seen + 1
            if index % self._stride or \
                    len(self._val_labels) >= self.max_images:
                continue
            if has_images and index not in self._val_images:
                # Packed validation images: BGR 0-255, not normalised.
                self._val_images[index] = tensors_to_rgb(inputs[i:i + 1],
                                                         False)[0]
            score = sample.pred_score.max().item() \
                if 'pred_score' in sample else float('nan')
            self._val_labels[index] = (int(sample.pred_label.item()), score,
                                       int(sample.gt_label.item()))

    def after_val_epoch(self, runner, metrics=None) -> None:
        shown = [i for i in self._val_labels if i in self._val_images]
        if not self._active() or not shown:
            return
        labels = [self._val_labels[i] for i in shown]
        preds = [p for p, _, _ in labels]
        if preds == self._val_drawn:
            return  # nothing changed since the last picture
        self._val_drawn = preds
        classes = _classes(runner.val_dataloader)
        rows = [(_name(classes, p), s, _name(classes, g))
                for p, s, g in labels]
        right = sum(p == g for p, _, g in labels)
        runner.logger.info(f'TrainingPreviewHook: val_predictions.jpg '
                           f'redrawn ({right}/{len(labels)} right)')
        self._submit(runner, draw_val_predictions, 'val_predictions.jpg',
                     [self._val_images[i] for i in shown], rows,
                     self.tile_size, f'epoch {runner.epoch}')

    def wait(self, runner) -> None:
        """Block until every submitted picture is written."""
        pending, self._pending = self._pending, []
        self._report(runner, pending)

    def after_run(self, runner) -> None:
        self.wait(runner)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
