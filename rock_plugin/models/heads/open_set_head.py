"""``OpenSetLinearClsHead``: a linear head with calibrated scores, a
novelty score against a bank of training features, and nearest neighbours.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

#: The answer shown for an image above the novelty threshold.
UNKNOWN_LABEL = 'unknown (unlike every trained class)'


@MODELS.register_module()
class OpenSetLinearClsHead(LinearClsHead):
    """mmpretrain's ``LinearClsHead`` that can also say "unknown".

    Everything it learns after training lives in buffers, so checkpoints,
    ``load_checkpoint`` and mmpretrain's stock inferencer carry it without
    code (the fitting is :class:`~rock_plugin.engine.hooks.
    OpenSetCalibrationHook`'s):

    - ``temperature``: ``pred_score = softmax(logits / T)``; T = 1 until fit.
    - ``bank`` / ``bank_labels``: unit-length pooled features of the
      training images (float16) and their classes; empty until fit.
    - ``novelty_stats``, ``fitted_threshold``: the novelty score is the sum
      of the z-scored cosine distance to the nearest bank feature and the
      z-scored energy ``-logsumexp(logits)``, z-scored by their mean / std
      on the validation fold; above the threshold (95 % of the validation
      images kept) an image is "unknown". Chosen by leaving classes out
      (docs/trust.md, tools/analysis/open_set_study.py): AUROC 0.978 vs
      0.971 (distance alone), 0.902 (max softmax of this head) and 0.663
      (max softmax of the unnormalised head).

    :meth:`predict` adds to each data sample ``raw_score`` (softmax at
    T = 1) and, once the bank is filled, ``novelty``, ``unknown``,
    ``neighbors`` (bank indices, nearest first) and ``neighbor_sims``;
    ``feature`` (the unit feature) when ``keep_features``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Feature length.
        num_neighbors (int): Neighbours reported per image. Defaults to 3.
        unknown_threshold (float, optional): Overrides the fitted threshold
            (``--unknown-threshold``). Defaults to None.
        keep_features (bool): Also store each image's feature (t-SNE).
        **kwargs: Passed to ``LinearClsHead``.

    Example:
        >>> head = MODELS.build(dict(type='OpenSetLinearClsHead',
        ...                          num_classes=3, in_channels=8))
        >>> head.predict((torch.rand(2, 8), ))[0].pred_score.shape
        torch.Size([3])
    """

    #: Buffers sized by the checkpoint they are loaded from (one row per
    #: training image): checkpoint-fit checks let their shapes differ.
    variable_shape_buffers = ('bank', 'bank_labels')

    def __init__(self, num_classes: int, in_channels: int,
                 num_neighbors: int = 3,
                 unknown_threshold: Optional[float] = None,
                 keep_features: bool = False, **kwargs):
        super().__init__(num_classes, in_channels, **kwargs)
        self.num_neighbors = int(num_neighbors)
        self.unknown_threshold = unknown_threshold
        self.keep_features = keep_features
        self.register_buffer('temperature', torch.ones(()))
        self.register_buffer('bank', torch.zeros(0, in_channels,
                                                 dtype=torch.float16))
        self.register_buffer('bank_labels', torch.zeros(0, dtype=torch.long))
        self.register_buffer('novelty_stats', torch.tensor([0., 1., 0., 1.]))
        self.register_buffer('fitted_threshold', torch.tensor(float('inf')))

    @property
    def has_bank(self) -> bool:
        """Whether the feature bank was filled (novelty is available)."""
        return self.bank.shape[0] > 0

    @property
    def threshold(self) -> float:
        """The novelty threshold in force (override, else fitted)."""
        if self.unknown_threshold is not None:
            return float(self.unknown_threshold)
        return float(self.fitted_threshold)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The bank's length is the training set's: take the saved shape.
        for name in ('bank', 'bank_labels'):
            saved = state_dict.get(prefix + name)
            mine = getattr(self, name)
            if torch.is_tensor(saved) and saved.shape != mine.shape:
                setattr(self, name, mine.new_empty(saved.shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_open_set(self, temperature: float, bank: torch.Tensor,
                     bank_labels: torch.Tensor, novelty_stats, threshold
                     ) -> None:
        """Store what :class:`OpenSetCalibrationHook` fitted."""
        device = self.fc.weight.device
        self.temperature = torch.tensor(float(temperature), device=device)
        self.bank = F.normalize(bank.float(), dim=1).half().to(device)
        self.bank_labels = bank_labels.long().to(device)
        self.novelty_stats = torch.as_tensor(
            novelty_stats, dtype=torch.float32, device=device)
        self.fitted_threshold = torch.tensor(float(threshold), device=device)

    @staticmethod
    def energy_score(logits: torch.Tensor) -> torch.Tensor:
        """The energy ``-logsumexp(logits)`` of each row (low: confident)."""
        return -torch.logsumexp(logits, dim=1)

    @staticmethod
    def fit_novelty_stats(knn: torch.Tensor,
                          energy: torch.Tensor) -> List[float]:
        """``novelty_stats`` from held-out images' nearest-neighbour
        distances and energies: ``[mean, std, mean, std]``."""
        # + 1e-6: a fold where every image scores the same must not
        # divide by zero
        return [float(knn.mean()), float(knn.std()) + 1e-6,
                float(energy.mean()), float(energy.std()) + 1e-6]

    @staticmethod
    def novelty_score(knn: torch.Tensor, energy: torch.Tensor,
                      stats) -> torch.Tensor:
        """The novelty score: the distance and the energy, each z-scored
        by ``stats`` (see :meth:`fit_novelty_stats`), summed."""
        mk, sk, me, se = stats
        return (knn - mk) / sk + (energy - me) / se

    def open_set_outputs(self, pre_logits: torch.Tensor,
                         logits: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Scores and novelty of ``(N, in_channels)`` features and their
        logits (traceable: the ONNX export runs it too).

        Returns:
            dict: ``score`` (calibrated), ``raw_score``; with a bank also
            ``knn_distance``, ``energy``, ``novelty``, ``neighbors`` and
            ``neighbor_sims``.
        """
        out = dict(score=F.softmax(logits / self.temperature, dim=1),
                   raw_score=F.softmax(logits, dim=1))
        if not self.has_bank:
            return out
        unit = F.normalize(pre_logits.float(), dim=1)
        sims = unit @ self.bank.float().t()
        k = min(self.num_neighbors, self.bank.shape[0])
        top_sims, top_idx = sims.topk(k, dim=1)
        knn = 1 - top_sims[:, 0]
        energy = self.energy_score(logits.float())
        out.update(knn_distance=knn, energy=energy,
                   novelty=self.novelty_score(
                       knn, energy, self.novelty_stats.unbind()),
                   neighbors=top_idx, neighbor_sims=top_sims, feature=unit)
        return out

    def predict(self, feats: Tuple[torch.Tensor],
                data_samples: Optional[List] = None) -> List:
        pre_logits = self.pre_logits(feats)
        logits = self(feats)  # through forward: its hooks see the logits
        out = {k: v.detach() for k, v in
               self.open_set_outputs(pre_logits, logits).items()}
        samples = self._get_predictions(logits / self.temperature,
                                        data_samples)
        threshold = self.threshold
        for i, sample in enumerate(samples):
            sample.set_field(out['raw_score'][i], 'raw_score')
            if 'novelty' in out:
                novelty = out['novelty'][i]
                sample.set_field(novelty, 'novelty')
                sample.set_field(bool(novelty > threshold), 'unknown')
                sample.set_field(out['neighbors'][i], 'neighbors')
                sample.set_field(out['neighbor_sims'][i], 'neighbor_sims')
            if self.keep_features:
                sample.set_field(F.normalize(
                    pre_logits[i].detach().float(), dim=0), 'feature')
        return samples
