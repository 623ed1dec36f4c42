"""``TestResultsHook``: the result files of a test run and its report."""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from rock_plugin.evaluation.functional.calibration import (ECE_BINS,
                                                           calibration_bins)
from rock_plugin.evaluation.metrics import PredictionCollector
from rock_plugin.evaluation.metrics.class_report import (
    ClassReportMetric, compute_rock_metrics, format_per_class_table)
from rock_plugin.evaluation.result_tables import (save_confusion_csv,
                                                  save_roc_pr_tables,
                                                  write_per_class_csv,
                                                  write_prediction_csv)
from rock_plugin.utils.atomic_io import atomic_write_json
from rock_plugin.utils.model_wrappers import bare_model
from rock_plugin.visualization import plot_confusion_matrix
from rock_plugin.visualization.mistakes import draw_mistakes_sheet
from rock_plugin.visualization.reliability import plot_reliability
from rock_plugin.visualization.roc_pr import plot_roc_pr


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
        files = self.save(results_dir, predictions, details, classes,
                          summary, title, self.mistakes,
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
            lines.append(self.calibration_line(summary['calibration']))
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
    def calibration_line(calibration: dict) -> str:
        """The report line of ``summary['calibration']``."""
        line = f'expected calibration error ({calibration["bins"]} bins): '
        if calibration.get('ece_raw') is None or \
                calibration.get('temperature') is None:
            return line + f'{calibration["ece"]:.2f} %'
        return line + (f'{calibration["ece_raw"]:.2f} % before, '
                       f'{calibration["ece"]:.2f} % after the temperature '
                       f'T = {calibration["temperature"]:.3f}')

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

    @staticmethod
    def save(results_dir: str, predictions: Sequence[dict],
             details: Dict[str, object], class_names: Sequence[str],
             summary: dict, title: str = 'Test', mistakes: int = 16,
             temperature: Optional[float] = None) -> Dict[str, str]:
        """Write every result file into ``results_dir`` (atomically): the
        tables of ``details`` (``compute_rock_metrics``'s) and
        ``predictions``, the confusion matrix (``title``), the ROC and PR
        curves (AUC and AP also into ``summary``), the reliability diagram
        of ``pred_score`` and, when every prediction has it, ``raw_score``
        (the scores at ``temperature`` and at 1; ``summary['calibration']``),
        ``summary.json`` and the ``mistakes`` sheet. Returns
        ``{kind: path}``."""
        join = lambda name: osp.join(results_dir, name)  # noqa: E731
        os.makedirs(results_dir, exist_ok=True)
        curve_files, areas = {}, {}
        if predictions:
            curves, curve_files, areas = save_roc_pr_tables(
                results_dir, predictions, class_names)
            for kind in ('roc', 'pr'):
                curve_files[f'{kind}_png'] = plot_roc_pr(
                    curves, kind, join(f'{kind}_curves.png'), title)
            curve_files['reliability'] = TestResultsHook._reliability(
                predictions, summary, join('reliability.png'), title,
                temperature)
        sheet = draw_mistakes_sheet(predictions, class_names,
                                    join('mistakes.jpg'), n=mistakes) \
            if mistakes > 0 else None
        summary.update(areas)
        confusion = details['confusion']
        return dict(
            per_class=write_per_class_csv(details, class_names,
                                          join('per_class.csv')),
            confusion_csv=save_confusion_csv(confusion, class_names,
                                             join('confusion_matrix.csv')),
            confusion_png=plot_confusion_matrix(
                confusion, class_names, join('confusion_matrix.png'),
                title=title),
            predictions=write_prediction_csv(predictions, class_names,
                                             join('prediction_results.csv')),
            summary=atomic_write_json(join('summary.json'), summary),
            **curve_files, **(dict(mistakes=sheet) if sheet else {}))

    @staticmethod
    def _reliability(predictions: Sequence[dict], summary: dict,
                     out_file: str, title: str,
                     temperature: Optional[float]) -> str:
        labels = np.array([p['gt_label'] for p in predictions])
        after = calibration_bins(
            np.array([p['pred_score'] for p in predictions], np.float64),
            labels, ECE_BINS)
        # raw_score: an OpenSetLinearClsHead's scores at T = 1 (a TTA
        # model's merged predictions have none)
        before = calibration_bins(
            np.array([p['raw_score'] for p in predictions], np.float64),
            labels, ECE_BINS) \
            if all('raw_score' in p for p in predictions) else None
        summary['calibration'] = dict(
            bins=ECE_BINS, ece=after['ece'] * 100,
            ece_raw=None if before is None else before['ece'] * 100,
            temperature=temperature)
        series = [dict(after, label='scores')] if before is None else [
            dict(before, label='before the temperature (T = 1)'),
            dict(after, label=f'after (T = {temperature:.3f})'
                 if temperature is not None else 'after')]
        return plot_reliability(series, out_file, title)
