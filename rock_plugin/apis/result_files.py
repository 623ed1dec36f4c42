"""Result files that pair a table (:mod:`rock_plugin.evaluation`) with its
figure (:mod:`rock_plugin.visualization`), which know nothing of each
other."""
import os.path as osp
from typing import Dict, Sequence, Tuple

from rock_plugin.evaluation.result_tables import save_roc_pr_tables
from rock_plugin.visualization.roc_pr import plot_roc_pr


def save_roc_pr(out_dir: str, predictions: Sequence[dict],
                class_names: Sequence[str], title: str = ''
                ) -> Tuple[Dict[str, str], Dict[str, Dict[str, float]]]:
    """Compute, write and draw into the existing ``out_dir`` the ROC and
    PR curves of a test run's ``predictions``: ``roc_pr_summary.csv``,
    ``roc_curves.csv/.png``, ``pr_curves.csv/.png``.

    Args:
        out_dir (str): Folder (exists).
        predictions (Sequence[dict]): ``PredictionCollector``'s, with
            ``gt_label`` and ``pred_score``.
        class_names (Sequence[str]): Names in label order.
        title (str): The figures' heading prefix. Defaults to none.

    Returns:
        tuple: ``({kind: path}, areas)``, ``areas`` being ``{'roc_auc':
        {curve: AUC}, 'average_precision': {curve: AP}}`` for every class,
        ``macro`` and ``micro`` (NaN for a class absent from the labels).

    Example:
        >>> files, areas = save_roc_pr('results', predictions, ['a', 'b'])
        >>> areas['roc_auc']['macro']
    """
    curves, files, areas = save_roc_pr_tables(out_dir, predictions,
                                              class_names)
    for kind in ('roc', 'pr'):
        files[f'{kind}_png'] = plot_roc_pr(
            curves, kind, osp.join(out_dir, f'{kind}_curves.png'), title)
    return files, areas
