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
    does to one view. The arithmetic mean of the probabilities is less
    confident than any view that agrees with it: on five carbonate fold
    models it was right on 81.6 % of the images at a mean confidence of
    76.5 % (pooled ECE 5.3 %, 2.4 % without TTA; README). Labels differ
    from the plain mean only where the views disagree.

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

    def _merge_single_sample(self, data_samples: List[DataSample]
                             ) -> DataSample:
        merged = data_samples[0].new()
        logs = torch.stack([s.pred_score.float().clamp_min(self.eps).log()
                            for s in data_samples])
        merged.set_pred_score(torch.softmax(logs.mean(0), dim=-1))
        return merged
