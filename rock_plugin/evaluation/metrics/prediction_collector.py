"""``PredictionCollector``: keep every image's prediction of a test run."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS


@METRICS.register_module()
class PredictionCollector(BaseMetric):
    """Collect ``img_path``, true label and class scores of every test image.

    A metric, so mmengine gathers the results on rank 0 in dataset order;
    it returns none: after ``runner.test()`` rank 0 reads :attr:`predictions`
    (and :attr:`features`). What an ``OpenSetLinearClsHead`` adds is kept
    when present: ``raw_score`` (the scores before the temperature),
    ``novelty`` and ``unknown`` in each prediction; its unit ``feature``
    (``keep_features=True``) apart, in :attr:`features`, out of the
    prediction records that ``--out`` dumps.

    Args:
        collect_device (str): See :class:`mmengine.evaluator.BaseMetric`.
        prefix (str, optional): Unused (no metric is returned).
    """
    default_prefix: Optional[str] = ''

    def __init__(self, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.predictions: List[Dict[str, object]] = []
        #: ``(N, D)`` unit features in prediction order, or None.
        self.features: Optional[np.ndarray] = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = np.asarray(sample['pred_score'].cpu(), dtype=np.float64)
            record = dict(
                img_path=str(sample.get('img_path', '')),
                gt_label=int(sample['gt_label'].item()),
                pred_label=int(score.argmax()), pred_score=score.tolist())
            if 'raw_score' in sample:
                record['raw_score'] = np.asarray(
                    sample['raw_score'].cpu(), dtype=np.float64).tolist()
            if 'novelty' in sample:
                record['novelty'] = float(sample['novelty'])
                record['unknown'] = bool(sample['unknown'])
            if 'feature' in sample:
                record['feature'] = np.asarray(sample['feature'].cpu(),
                                               dtype=np.float32)
            self.results.append(record)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        features = [r.pop('feature') for r in results if 'feature' in r]
        self.features = np.stack(features) \
            if features and len(features) == len(results) else None
        self.predictions = list(results)
        return {}

    @classmethod
    def predictions_of(cls, evaluator) -> Tuple[List[dict], List[str]]:
        """The predictions of an evaluator's (e.g. ``runner.test_evaluator``)
        first metric of this class, on rank 0 after evaluating (in dataset
        order), and the class names: the dataset's, or ``'0'``, ``'1'``...
        when their count is not the model's.

        Example:
            >>> preds, classes = PredictionCollector.predictions_of(
            ...     runner.test_evaluator)
        """
        collector = next((m for m in getattr(evaluator, 'metrics', ())
                          if isinstance(m, cls)), None)
        if collector is None:
            raise ValueError(
                "the test evaluator has no dict(type='PredictionCollector'),"
                ' which the test result hooks read')
        return collector.predictions, cls._class_names(collector)

    @classmethod
    def features_of(cls, evaluator) -> Optional[np.ndarray]:
        """The ``(N, D)`` unit features of an evaluator's first metric of
        this class (rank 0, after evaluating; rows in the order of
        :meth:`predictions_of`), or None when the head kept none."""
        return next((m.features for m in getattr(evaluator, 'metrics', ())
                     if isinstance(m, cls)), None)

    @staticmethod
    def _class_names(collector) -> List[str]:
        predictions = collector.predictions
        num_classes = len(predictions[0]['pred_score']) if predictions else 0
        classes = [str(c) for c in
                   (collector.dataset_meta or {}).get('classes') or ()]
        if len(classes) != num_classes:
            classes = [str(i) for i in range(num_classes)]
        return classes
