"""``TrainingPreviewHook``: pictures of what training sees and predicts."""
import os.path as osp
from concurrent.futures import Future, ThreadPoolExecutor
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def _rgb_batch(images, to_rgb: bool) -> List[np.ndarray]:
    """``N x C x H x W`` (or a list of ``C x H x W``) 0-255 tensors -> RGB
    ``uint8`` arrays; ``to_rgb`` says whether the channels are RGB already."""
    out = []
    for img in images:
        arr = img.detach().float().clamp(0, 255).byte().cpu().numpy()
        arr = arr.transpose(1, 2, 0)
        out.append(np.ascontiguousarray(arr if to_rgb else arr[..., ::-1]))
    return out


def _is_image_batch(inputs) -> bool:
    first = inputs[0] if isinstance(inputs, (list, tuple)) and inputs \
        else inputs
    return isinstance(first, torch.Tensor) and first.dim() in (3, 4) and \
        first.shape[-3] == 3


@HOOKS.register_module()
class TrainingPreviewHook(Hook):
    """Write ``train_batch0.jpg`` and ``val_predictions.jpg`` to the work dir.

    As Ultralytics does: when training starts, the first augmented batch as
    the model gets it (after the data preprocessor, de-normalised, each image
    labelled with its class); after each validation, a grid of the first
    ``max_images`` validation images with predicted (and score) and true
    class, mistakes framed red, redrawn only when a prediction changed.
    Drawing and writing run on a background thread (rank 0 only); a failed
    drawing is logged, never stops training.

    Args:
        enabled (bool): False turns both pictures off. Defaults to True.
        max_images (int): Images per picture. Defaults to 16.
        tile_size (int): Longer side of each image, in pixels.
            Defaults to 192.

    Example:
        >>> custom_hooks = [dict(type='TrainingPreviewHook')]
    """

    priority = 'LOW'

    def __init__(self, enabled: bool = True, max_images: int = 16,
                 tile_size: int = 192):
        self.enabled = enabled
        self.max_images = max_images
        self.tile_size = tile_size
        self._executor: Optional[ThreadPoolExecutor] = None
        self._pending: List[Future] = []
        self._train_drawn = False
        self._val_images: List[np.ndarray] = []
        self._val_labels: List[tuple] = []  # (pred, score, gt) this epoch
        self._val_drawn: Optional[list] = None

    def _active(self) -> bool:
        return self.enabled and is_main_process()

    def _submit(self, runner, draw, *args) -> None:
        from rock_plugin.visualization.annotate import save_image
        path = osp.join(runner.work_dir, args[0])

        def job():
            save_image(path, draw(*args[1:]))

        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix='TrainingPreviewHook')
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        self._report(runner, done)
        self._pending.append(self._executor.submit(job))

    @staticmethod
    def _report(runner, futures) -> None:
        for future in futures:
            try:
                future.result()
            except Exception as exc:  # a picture must never kill a run
                runner.logger.warning(f'TrainingPreviewHook: {exc!r}')

    @staticmethod
    def _classes(runner, loader) -> list:
        dataset = getattr(loader, 'dataset', None)
        return list((getattr(dataset, 'metainfo', None) or {}).get(
            'classes') or [])

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
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        prep = model.data_preprocessor
        n = self.max_images
        with torch.no_grad():
            # What the model gets (channel order, normalisation), undone.
            x = prep(dict(inputs=inputs[:n]), False)['inputs'].float()
            if getattr(prep, '_enable_normalize', False):
                x = x * prep.std.view(1, -1, 1, 1) + \
                    prep.mean.view(1, -1, 1, 1)
        images = _rgb_batch(x, getattr(prep, 'to_rgb', False))
        classes = self._classes(runner, runner.train_dataloader)
        labels = [_name(classes, s.gt_label)
                  for s in data_batch.get('data_samples', [])[:n]]
        from rock_plugin.visualization.annotate import draw_train_batch
        self._submit(runner, draw_train_batch, 'train_batch0.jpg', images,
                     labels, self.tile_size)

    def before_val_epoch(self, runner) -> None:
        self._val_labels = []

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        if not self._active() or not outputs:
            return
        room = self.max_images - len(self._val_labels)
        if room <= 0:
            return
        inputs = (data_batch or {}).get('inputs')
        # The cached validation loop drops pixels after its first pass: the
        # validation pipeline is deterministic, so the first pass's images
        # stand for every later one.
        if inputs is not None and _is_image_batch(inputs) and \
                len(self._val_images) < self.max_images:
            # Packed validation images are BGR 0-255, not yet normalised.
            self._val_images += _rgb_batch(inputs[:room], False)
        for sample in outputs[:room]:
            score = sample.pred_score.max().item() \
                if 'pred_score' in sample else float('nan')
            self._val_labels.append((int(sample.pred_label.item()), score,
                                     int(sample.gt_label.item())))

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not self._active() or not self._val_labels or \
                not self._val_images:
            return
        n = min(len(self._val_images), len(self._val_labels))
        preds = [p for p, _, _ in self._val_labels[:n]]
        if preds == self._val_drawn:
            return  # nothing changed since the last picture
        self._val_drawn = preds
        classes = self._classes(runner, runner.val_dataloader)
        rows = [(_name(classes, p), s, _name(classes, g))
                for p, s, g in self._val_labels[:n]]
        right = sum(p == g for p, _, g in self._val_labels[:n])
        runner.logger.info(f'TrainingPreviewHook: val_predictions.jpg '
                           f'redrawn ({right}/{n} right)')
        from rock_plugin.visualization.annotate import draw_val_predictions
        self._submit(runner, draw_val_predictions, 'val_predictions.jpg',
                     self._val_images[:n], rows, self.tile_size,
                     f'epoch {runner.epoch}')

    def wait(self, runner) -> None:
        """Block until every submitted picture is written."""
        pending, self._pending = self._pending, []
        self._report(runner, pending)

    def after_run(self, runner) -> None:
        self.wait(runner)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _name(classes: list, label) -> str:
    index = int(label.item() if hasattr(label, 'item') else label)
    return classes[index] if index < len(classes) else str(index)
