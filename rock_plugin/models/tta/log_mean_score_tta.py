"""Test-time augmentation that keeps the head's calibration."""
from typing import List

import torch
from mmpretrain.models.tta import AverageClsScoreTTA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class LogMeanClsScoreTTA(AverageClsScoreTTA):
    """mmpretrain's ``AverageClsScoreTTA`` with the views' scores merged by
    their normalised geometric mean instead of their mean.

    With ``score = softmax(logits / T)`` the geometric mean is
    ``softmax(mean of the views' logits / T)``: the views' logits are
    averaged and the temperature fitted on single views applies as it
    does to one view (``raw_score``, T = 1, likewise). The merged sample
    holds the scores, the label and the ground truth only: the views'
    novelty and neighbours are not merged. The arithmetic mean of the
    probabilities is less confident than the views that agree with it: on
    five carbonate fold models it was right on 81.6 % of the images at a
    mean confidence of 76.5 % (pooled ECE 5.3 %, 2.4 % without TTA;
    README). Labels differ from the plain mean only where views disagree.

    Args:
        module (dict or nn.Module): The model, as ``BaseTTAModel``'s.
        eps (float): Scores are clamped to at least this before the log.
            Defaults to 1e-12.

    Example:
        >>> tta_model = dict(type='LogMeanClsScoreTTA')
        >>> # tools/test.py CONFIG CKPT --tta wraps the model in it
    """

    def __init__(self, *args, eps: float = 1e-12, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = eps

    def _log_mean(self, scores: List[torch.Tensor]) -> torch.Tensor:
        logs = torch.stack([s.float().clamp_min(self.eps).log()
                            for s in scores])
        return torch.softmax(logs.mean(0), dim=-1)

    def _merge_single_sample(self, data_samples: List[DataSample]
                             ) -> DataSample:
        # A new sample, not ``data_samples[0].new()`` (mmpretrain's), which
        # would carry the first view's label, novelty, "unknown" flag and
        # neighbours beside the merged score: none of those is merged.
        first = data_samples[0]
        merged = DataSample(metainfo=first.metainfo)
        if 'gt_label' in first:
            merged.set_gt_label(first.gt_label)
        score = self._log_mean([s.pred_score for s in data_samples])
        merged.set_pred_score(score).set_pred_label(score.argmax(-1))
        if all('raw_score' in s for s in data_samples):  # T = 1 scores
            merged.set_field(self._log_mean(
                [s.raw_score for s in data_samples]), 'raw_score')
        return merged
