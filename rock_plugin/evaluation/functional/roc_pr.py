"""One-vs-rest ROC and precision-recall curves with AUC / AP (sklearn)."""
from typing import Dict, Sequence

import numpy as np
from sklearn.metrics import (auc, average_precision_score,
                             precision_recall_curve, roc_curve)

# Macro averages: each class's curve interpolated onto one grid (sklearn).
_GRID = np.linspace(0.0, 1.0, 201)


def _curve(x, y, thresholds, area: float, positives: int) -> dict:
    return dict(x=np.asarray(x, float), y=np.asarray(y, float),
                thresholds=np.asarray(thresholds, float), area=float(area),
                positives=int(positives))


def roc_pr_curves(scores: np.ndarray, labels: np.ndarray,
                  class_names: Sequence[str]) -> Dict[str, Dict[str, dict]]:
    """Per-class one-vs-rest ROC and PR curves of ``(N, C)`` ``scores`` and
    ``(N,)`` ``labels``, plus macro and micro averages (a class without
    positives or negatives: NaN area, not in the macro).

    Returns:
        dict: ``{'roc': {...}, 'pr': {...}}``, each ``{name: curve}`` for every
        class, ``'macro'`` and ``'micro'``; a curve has ``x`` (FPR, recall),
        ``y`` (TPR, precision), ``thresholds``, ``area`` (AUC, AP) and
        ``positives``.
    """
    scores = np.asarray(scores, float)
    labels = np.asarray(labels)
    onehot = labels[:, None] == np.arange(scores.shape[1])[None, :]
    roc: Dict[str, dict] = {}
    pr: Dict[str, dict] = {}
    empty = _curve([], [], [], np.nan, 0)

    def add(name, truth, score, pos):
        fpr, tpr, thr = roc_curve(truth, score)
        roc[name] = _curve(fpr, tpr, thr, auc(fpr, tpr), pos)
        prec, rec, thr = precision_recall_curve(truth, score)
        pr[name] = _curve(rec, prec, np.append(thr, np.nan),
                          average_precision_score(truth, score), pos)
    for c, name in enumerate(class_names):
        pos = int(onehot[:, c].sum())
        if pos == 0 or pos == len(labels):
            roc[name] = dict(empty, positives=pos)
            pr[name] = dict(empty, positives=pos)
        else:
            add(name, onehot[:, c], scores[:, c], pos)
    valid = [n for n in class_names if not np.isnan(roc[n]['area'])]
    if valid:
        # PR curves come with decreasing recall; np.interp needs rising x.
        for table, step in ((roc, 1), (pr, -1)):
            y = np.mean([np.interp(_GRID, table[n]['x'][::step],
                                   table[n]['y'][::step]) for n in valid], 0)
            table['macro'] = _curve(_GRID, y, np.full_like(_GRID, np.nan),
                                    np.mean([table[n]['area']
                                             for n in valid]), len(labels))
        add('micro', onehot.ravel(), scores.ravel(), len(labels))
    else:
        for table in (roc, pr):
            table['macro'] = table['micro'] = dict(empty)
    return dict(roc=roc, pr=pr)
