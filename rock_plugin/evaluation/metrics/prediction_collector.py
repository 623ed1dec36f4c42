"""``PredictionCollector``: keep every image's prediction of a test run."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS


@METRICS.register_module()
class PredictionCollector(BaseMetric):
    """Collect ``img_path``, true label and class scores of every test image.

    A metric, so mmengine gathers the results on rank 0 in dataset order;
    it returns none: after ``runner.test()`` rank 0 reads :attr:`predictions`.

    Args:
        collect_device (str): See :class:`mmengine.evaluator.BaseMetric`.
        prefix (str, optional): Unused (no metric is returned).
    """
    default_prefix: Optional[str] = ''

    def __init__(self, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.predictions: List[Dict[str, object]] = []

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = np.asarray(sample['pred_score'].cpu(), dtype=np.float64)
            self.results.append(dict(
                img_path=str(sample.get('img_path', '')),
                gt_label=int(sample['gt_label'].item()),
                pred_label=int(score.argmax()), pred_score=score.tolist()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
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
        predictions = collector.predictions
        num_classes = len(predictions[0]['pred_score']) if predictions else 0
        classes = [str(c) for c in
                   (collector.dataset_meta or {}).get('classes') or ()]
        if len(classes) != num_classes:
            classes = [str(i) for i in range(num_classes)]
        return predictions, classes
