"""``TestResultsHook``: the result files of a test run and its report."""
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.metrics import PredictionCollector
from rock_plugin.evaluation.metrics.class_report import (
    ClassReportMetric, compute_rock_metrics, format_per_class_table)
from rock_plugin.engine.test_result_files import (calibration_line,
                                                  save_test_results)
from rock_plugin.utils.model_wrappers import bare_model


@HOOKS.register_module()
class TestResultsHook(Hook):
    """Write a test run's result files, then log its report (rank 0).

    After the test epoch, into ``results_dir``: ``per_class.csv``,
    ``confusion_matrix.csv/.png``, ``prediction_results.csv``,
    ``summary.json``, the one-vs-rest ROC and PR tables and figures,
    ``reliability.png`` (the expected calibration error before and after
    an ``OpenSetLinearClsHead``'s temperature, also in ``summary.json``) and
    ``mistakes.jpg``, from the test evaluator's ``PredictionCollector`` and
    the details of its ``ClassReportMetric`` (computed here when the config
    tests with another metric). After the test, one log record: the
    per-class table, the metrics, the files, then the ``report_lines`` of
    the hooks that wrote before it (``DumpResultsHook``,
    ``PredictionVisualizationHook``).

    Args:
        results_dir (str, optional): Defaults to ``<work_dir>/test_results``.
        config (str, optional): The config file ``summary.json`` names.
        mistakes (int): Mistakes on ``mistakes.jpg`` (0: no sheet).
            Defaults to 16.

    Example:
        >>> custom_hooks = [dict(type='TestResultsHook', mistakes=8)]
        >>> test_evaluator = [dict(type='ClassReportMetric', log_table=False),
        ...                   dict(type='PredictionCollector')]
    """
    priority = 'LOW'  # after LoggerHook's "Epoch(test)" line

    def __init__(self, results_dir: Optional[str] = None,
                 config: Optional[str] = None, mistakes: int = 16):
        self.results_dir = results_dir
        self.config = config
        self.mistakes = mistakes
        #: Rank 0, after the test: ``details``, ``predictions``,
        #: ``classes``, ``results_dir``, ``files`` and ``summary``.
        self.results: Dict[str, object] = {}
        #: Whether the test epoch ended (every rank), failing writes or not.
        self.tested = False
        self._checkpoint_epoch = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta')
        self._checkpoint_epoch = meta.get('epoch') \
            if isinstance(meta, dict) else None

    def before_test_epoch(self, runner) -> None:
        self.results, self.tested = {}, False

    def after_test_epoch(self, runner, metrics: Optional[dict] = None):
        self.tested = True
        if not is_main_process():
            return
        predictions, classes = PredictionCollector.predictions_of(
            runner.test_evaluator)
        details = self._details(runner, predictions, len(classes))
        results_dir = self.results_dir or osp.join(runner.work_dir,
                                                   'test_results')
        summary = self._summary(runner, metrics or {}, predictions, classes)
        title = f'Test, {osp.basename(runner.cfg.load_from or "")}'
        files = save_test_results(results_dir, predictions, details,
                                  classes, summary, title, self.mistakes,
                                  temperature=self._temperature(runner))
        self.results = dict(details=details, predictions=predictions,
                            classes=classes, results_dir=results_dir,
                            files=files, summary=summary)

    def after_test(self, runner) -> None:
        if not self.results:
            return
        res, summary = self.results, self.results['summary']
        lines = ['\n' + format_per_class_table(res['details'], res['classes']),
                 '  '.join(f'{k}: {v:.2f}'
                           for k, v in summary['metrics'].items())]
        if 'roc_auc' in summary:
            auc, ap = summary['roc_auc'], summary['average_precision']
            lines.append(f'one-vs-rest ROC AUC macro {auc["macro"]:.4f} '
                         f'micro {auc["micro"]:.4f}, AP macro '
                         f'{ap["macro"]:.4f} micro {ap["micro"]:.4f}')
        if 'calibration' in summary:
            lines.append(calibration_line(summary['calibration']))
        lines.append(f'{len(res["predictions"])} test images; results in '
                     f'{res["results_dir"]}:')
        lines += [f'  {osp.basename(p)}' for p in res['files'].values()]
        lines += [line for hook in runner.hooks
                  for line in getattr(hook, 'report_lines', ())]
        print_log('\n'.join(lines), logger='current')

    @staticmethod
    def _temperature(runner) -> Optional[float]:
        """The temperature of the model's head, if it has one."""
        model = getattr(runner, 'model', None)
        model = None if model is None else bare_model(model, tta=True)
        t = getattr(getattr(model, 'head', None), 'temperature', None)
        return None if t is None else float(t)

    @staticmethod
    def _details(runner, predictions: Sequence[dict], num_classes: int):
        details = ClassReportMetric.details_of(runner.test_evaluator)
        if details and len(details.get('support', [])) == num_classes \
                and sum(details['support']) == len(predictions):
            return details
        # the config tests with another metric
        topk = next((m.topk for m in runner.test_evaluator.metrics
                     if isinstance(m, ClassReportMetric)), (1, 5))
        return compute_rock_metrics(
            np.array([p['pred_score'] for p in predictions], np.float64),
            np.array([p['gt_label'] for p in predictions]), num_classes,
            topk)

    def _summary(self, runner, metrics: dict, predictions: Sequence[dict],
                 classes: List[str]) -> dict:
        cfg, dataset = runner.cfg, runner.test_dataloader.dataset
        test_ds = cfg.test_dataloader.dataset
        return dict(
            metrics={k: float(v) for k, v in metrics.items()
                     if isinstance(v, (int, float))},
            checkpoint=osp.abspath(cfg.load_from) if cfg.get('load_from')
            else None,
            config=osp.abspath(self.config) if self.config else None,
            num_images=len(predictions), classes=classes,
            data_root=test_ds.get('data_root'),
            split=None if test_ds.get('split') is None else dict(
                split=test_ds.get('split'), ratio=test_ds.get('val_ratio'),
                fold=getattr(dataset, 'fold', test_ds.get('fold')),
                seed=test_ds.get('split_seed')),
            checkpoint_epoch=self._checkpoint_epoch,
            world_size=get_world_size(),
            tta=cfg.model.get('module') is not None,  # tta_config wrapped it
            time=time.strftime('%Y-%m-%d %H:%M:%S'))
