"""The result files of a test run (what ``tools/test.py``,
:class:`~rock_plugin.engine.hooks.TestResultsHook` and ``OpenSetTestHook``
write) and their report lines."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rock_plugin.evaluation.functional.calibration import (ECE_BINS,
                                                           calibration_bins,
                                                           open_set_report)
from rock_plugin.evaluation.result_tables import (save_confusion_csv,
                                                  save_roc_pr_tables,
                                                  write_novelty_csv,
                                                  write_per_class_csv,
                                                  write_prediction_csv)
from rock_plugin.utils.atomic_io import atomic_write_json
from rock_plugin.utils.text import printable
from rock_plugin.visualization import plot_confusion_matrix
from rock_plugin.visualization.mistakes import draw_mistakes_sheet
from rock_plugin.visualization.reliability import plot_reliability
from rock_plugin.visualization.roc_pr import plot_roc_pr


def calibration_line(calibration: dict) -> str:
    """The report line of ``summary['calibration']`` (see
    :func:`save_test_results`)."""
    line = f'expected calibration error ({calibration["bins"]} bins): '
    if calibration.get('ece_raw') is None or \
            calibration.get('temperature') is None:
        return line + f'{calibration["ece"]:.2f} %'
    return line + (f'{calibration["ece_raw"]:.2f} % before, '
                   f'{calibration["ece"]:.2f} % after the temperature '
                   f'T = {calibration["temperature"]:.3f}')


def save_test_results(results_dir: str, predictions: Sequence[dict],
                      details: Dict[str, object],
                      class_names: Sequence[str], summary: dict,
                      title: str = 'Test', mistakes: int = 16,
                      temperature: Optional[float] = None
                      ) -> Dict[str, str]:
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
        curve_files['reliability'] = _reliability(
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


def save_open_set_results(results_dir: str, head, predictions: Sequence[dict],
                          classes: Sequence[str], unknown_dir: str,
                          unknown_files: Sequence[str], unknown: list
                          ) -> Tuple[dict, Dict[str, str], List[str]]:
    """The open-set report of a test run against ``unknown_dir``'s images:
    ``open_set.json`` (:func:`open_set_report`, the threshold's source, the
    temperature, the test accuracy) and ``novelty_scores.csv`` (every test
    and unknown image, flagged or not, predicted class).

    Args:
        results_dir (str): Where the files go.
        head: The model's ``OpenSetLinearClsHead`` (``threshold``,
            ``unknown_threshold``, ``temperature``).
        predictions (Sequence[dict]): The test images' predictions
            (``img_path``, ``novelty``, ``pred_label``, ``gt_label``).
        classes (Sequence[str]): Class names.
        unknown_dir (str): The folder of unknown images.
        unknown_files (Sequence[str]): Its images, in ``unknown``'s order.
        unknown (list): Their data samples (``novelty``, ``pred_score``).

    Returns:
        tuple: ``(report, {name: path}, report lines)``.

    Example:
        >>> report, files, lines = save_open_set_results(
        ...     'test_results', model.head, predictions, classes, 'other',
        ...     files, samples)
    """
    threshold = head.threshold
    known = [p['novelty'] for p in predictions]
    novelty = [float(s.novelty) for s in unknown]
    report = open_set_report(known, novelty, threshold)
    right = sum(p['pred_label'] == p['gt_label'] for p in predictions)
    report.update(
        threshold_source='fitted' if head.unknown_threshold is None
        else 'unknown_threshold', temperature=float(head.temperature),
        known_accuracy=100 * right / max(len(predictions), 1),
        unknown_dir=osp.abspath(unknown_dir))
    rows = [(p['img_path'], 'known', p['novelty'], p['novelty'] > threshold,
             classes[p['pred_label']]) for p in predictions]
    rows += [(f, 'unknown', n, n > threshold,
              classes[int(s.pred_score.argmax())])
             for f, n, s in zip(unknown_files, novelty, unknown)]
    files = dict(
        open_set=atomic_write_json(osp.join(results_dir, 'open_set.json'),
                                   report),
        novelty_scores=write_novelty_csv(
            rows, osp.join(results_dir, 'novelty_scores.csv')))
    lines = [
        f'open set: {len(novelty)} images of '
        f'{printable(unknown_dir, one_line=True)} against the {len(known)} '
        f'test images: novelty AUROC {report["auroc"]:.3f}',
        f'  above the novelty threshold {threshold:.3f} '
        f'({report["threshold_source"]}): '
        f'{report["unknown_flagged"] * 100:.1f} % of the unknown images '
        f'flagged, {report["known_flagged"] * 100:.1f} % of the test images '
        f'(test top-1 {report["known_accuracy"]:.2f} %)',
        '  ' + ', '.join(osp.basename(f) for f in files.values())]
    return report, files, lines
