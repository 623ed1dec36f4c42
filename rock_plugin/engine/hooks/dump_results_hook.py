"""``DumpResultsHook``: ``tools/test.py --out``, as JSON."""
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.metrics import PredictionCollector
from rock_plugin.utils.atomic_io import atomic_write_json


@HOOKS.register_module()
class DumpResultsHook(Hook):
    """mmpretrain's ``--out`` (its ``DumpResults`` metric, or the metrics
    dumped after the test), as a ``.json`` file written atomically by rank
    0 after the test epoch: pickle files can run code when loaded, so none
    are written. A hook, not a metric: ``out_item='metrics'`` needs every
    metric's result, which only ``after_test_epoch`` is given.

    Args:
        out_file (str): The ``.json`` file.
        out_item (str): ``'pred'``: the test evaluator's
            ``PredictionCollector`` records (``img_path``, ``gt_label``,
            ``pred_label``, ``pred_score``) with ``gt_class`` and
            ``pred_class`` added; ``'metrics'``: the scalar metrics.
            Defaults to ``'pred'``.

    Example:
        >>> custom_hooks = [dict(type='DumpResultsHook',
        ...                      out_file='preds.json')]
    """
    priority = 'LOW'  # after TestResultsHook, as the files were written

    def __init__(self, out_file: str, out_item: str = 'pred'):
        #: What ``TestResultsHook`` adds to its report (rank 0).
        self.report_lines = []
        if not out_file.lower().endswith('.json'):
            raise ValueError(f'--out {out_file}: use a .json file (pickle '
                             'files can run code when loaded, so none are '
                             'written)')
        if out_item not in ('pred', 'metrics'):
            raise ValueError(f"--out-item {out_item}: use 'pred' or "
                             "'metrics'")
        self.out_file, self.out_item = out_file, out_item

    def after_test_epoch(self, runner, metrics: Optional[dict] = None):
        self.report_lines = []
        if not is_main_process():
            return
        if self.out_item == 'metrics':
            dump = {k: float(v) for k, v in (metrics or {}).items()
                    if isinstance(v, (int, float))}
        else:
            predictions, classes = PredictionCollector.predictions_of(
                runner.test_evaluator)
            dump = [dict(p, gt_class=classes[p['gt_label']],
                         pred_class=classes[p['pred_label']])
                    for p in predictions]
        atomic_write_json(self.out_file, dump)
        self.report_lines = [f'--out ({self.out_item}): {self.out_file}']
