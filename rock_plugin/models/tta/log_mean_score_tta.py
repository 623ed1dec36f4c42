"""Test-time augmentation that keeps the head's calibration."""
from typing import List

import torch
from mmpretrain.models.tta import AverageClsScoreTTA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from rock_plugin.evaluation.slide_results import pool_scores


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

    The merge is :func:`~rock_plugin.evaluation.slide_results.pool_scores`
    ``'logmean'``, which pools a slide's tiles the same way.

    Args:
        module (dict or nn.Module): The model, as ``BaseTTAModel``'s.

    Example:
        >>> tta_model = dict(type='LogMeanClsScoreTTA')
        >>> # tools/test.py CONFIG CKPT --tta wraps the model in it
    """

    @staticmethod
    def _log_mean(scores: List[torch.Tensor]) -> torch.Tensor:
        views = torch.stack([s.detach().float().cpu() for s in scores])
        _, pooled, _ = pool_scores(views.numpy(), ['views'] * len(scores),
                                   mode='logmean')
        return torch.as_tensor(pooled[0], dtype=torch.float32,
                               device=scores[0].device)

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
