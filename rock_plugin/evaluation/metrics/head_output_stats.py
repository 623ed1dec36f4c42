"""Per-epoch training accuracy/P/R/F1 and validation loss from the head."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import all_reduce, collect_results

from rock_plugin.utils.model_wrappers import bare_model

from .class_report import macro_metrics_from_confusion


class HeadOutputStats:
    """Training loss, top-1 and macro P/R/F1 on the augmented training
    batches, and the validation loss, as the original trainer recorded them.

    Class scores come from a forward hook on ``model.head``, so nothing runs
    twice and a cached validation gives the same values.
    """

    def __init__(self):
        self.head = self._handle = self._scores = None
        self._loss = torch.zeros(2, dtype=torch.float64)  # sum, count
        self._confusion: Optional[torch.Tensor] = None
        self._val_losses: List[float] = []

    def attach(self, model) -> None:
        """Start reading the scores of ``model.head`` (if it has one)."""
        self.head = getattr(bare_model(model), 'head', None)
        if self.head is not None and self._handle is None:
            self._handle = self.head.register_forward_hook(self._capture)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self.head = self._handle = self._scores = None

    def _capture(self, module, args, output) -> None:
        if torch.is_tensor(output):
            self._scores = output.detach()

    def _take(self, samples: Optional[Sequence]) -> Optional[torch.Tensor]:
        scores, self._scores = self._scores, None
        if scores is None or not samples or len(samples) != len(scores) or \
                'gt_label' not in samples[0]:
            return None
        return scores

    def start_train_epoch(self) -> None:
        self._loss.zero_()
        n = getattr(self.head, 'num_classes', None)
        self._confusion = torch.zeros(n, n, dtype=torch.int64) \
            if isinstance(n, int) else None

    def add_train_batch(self, samples: Optional[Sequence],
                        loss: Optional[float]) -> None:
        """One iteration: its data samples (true labels) and its loss."""
        if loss is not None:
            self._loss += torch.tensor([loss, 1.0], dtype=torch.float64)
        scores = self._take(samples)
        if scores is None or self._confusion is None or \
                scores.shape[1] != len(self._confusion):
            return
        labels = torch.cat([s.gt_label for s in samples]).cpu()
        cells = labels * len(self._confusion) + scores.argmax(1).cpu()
        self._confusion += torch.bincount(
            cells, minlength=self._confusion.numel()).view_as(self._confusion)

    def train_values(self) -> Dict[str, float]:
        """``train_loss`` and ``train_<metric>`` of
        :func:`macro_metrics_from_confusion` over all ranks (a collective)."""
        all_reduce(self._loss)
        total, count = self._loss.tolist()
        values = dict(train_loss=total / count if count else float('nan'))
        if self._confusion is not None:
            all_reduce(self._confusion)
            train = macro_metrics_from_confusion(self._confusion.numpy())
            values.update({f'train_{k}': v for k, v in train.items()})
        return values

    def start_val(self) -> None:
        self._val_losses = []

    def add_val_batch(self, outputs: Optional[Sequence]) -> None:
        """One validation iteration: its predicted data samples."""
        scores = self._take(outputs)
        loss_module = getattr(self.head, 'loss_module', None)
        if scores is None or loss_module is None:
            return
        labels = torch.cat([s.gt_label for s in outputs]).to(scores.device)
        with torch.no_grad():
            # per image, so the mean does not depend on the batch size
            losses = loss_module(scores.float(), labels,
                                 reduction_override='none')
        self._val_losses.extend(losses.reshape(-1).tolist())

    def val_loss(self, size: int) -> float:
        """Mean loss over the ``size`` validation images (a collective)."""
        losses = collect_results(self._val_losses, size)  # padding removed
        return float(np.mean(losses)) if losses else float('nan')
