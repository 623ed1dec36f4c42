"""Calibration and open-set maths: expected calibration error, temperature
fitting, the threshold that keeps a share of known images, AUROC.

ECE is written here by hand: sklearn's ``calibration_curve`` is binary only
and torchmetrics is not a dependency; top-label ECE is a few lines.
"""
from typing import Dict, Sequence, Tuple

import numpy as np

#: Bins of the expected calibration error (Guo et al. 2017 use 15).
ECE_BINS = 15
#: Parts of the cut of :func:`crossfit_temperature_scores` in the CV summary
#: and the calibration hook's log (T fitted on 80 % of the images).
CROSSFIT_PARTS = 5


def calibration_bins(scores: np.ndarray, labels: np.ndarray,
                     n_bins: int = ECE_BINS) -> Dict[str, np.ndarray]:
    """Top-label reliability bins of equal width on ``[0, 1]``.

    Args:
        scores (np.ndarray): ``(N, C)`` class scores (each row sums to 1).
        labels (np.ndarray): ``(N,)`` true labels.
        n_bins (int): Number of bins.

    Returns:
        dict: ``edges`` (``n_bins + 1``), per-bin ``count``, mean
        ``confidence`` and ``accuracy`` (NaN for an empty bin), and ``ece``
        (a fraction: the count-weighted mean gap).

    Example:
        >>> calibration_bins(np.array([[0.9, 0.1]]), np.array([0]))['ece']
        0.09999999999999998
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    conf = scores.max(axis=1)
    correct = scores.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins, the top one includes 1.0
    which = np.clip(np.searchsorted(edges, conf, side='left') - 1, 0,
                    n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean_conf = np.bincount(which, conf, n_bins) / count
        accuracy = np.bincount(which, correct.astype(float), n_bins) / count
    gaps = np.nan_to_num(np.abs(mean_conf - accuracy)) * count
    ece = float(gaps.sum() / max(len(conf), 1))
    return dict(edges=edges, count=count, confidence=mean_conf,
                accuracy=accuracy, ece=ece)


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray,
                               n_bins: int = ECE_BINS) -> float:
    """Top-label ECE of ``scores`` against ``labels`` as a fraction (see
    :func:`calibration_bins`)."""
    return calibration_bins(scores, labels, n_bins)['ece']


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    bounds: Tuple[float, float] = (1.0, 100.0)) -> float:
    """The temperature that minimises the negative log-likelihood of
    ``labels`` under ``softmax(logits / T)``, searched within ``bounds``.

    The default lower bound 1 never sharpens the trained model: a small
    validation fold without errors pulls the fitted T towards 0 (measured on
    the quick start's folds: 0.74 +- 0.64, while out-of-fold logits pooled
    over 5 folds gave 1.17), which would make unseen images more confident.

    Args:
        logits (np.ndarray): ``(N, C)`` logits.
        labels (np.ndarray): ``(N,)`` true labels.
        bounds (tuple): ``(lowest, highest)`` temperature.

    Returns:
        float: The temperature.

    Example:
        >>> round(fit_temperature(np.array([[9., 0.], [9., 0.]]),
        ...                       np.array([0, 1])), 6)
        100.0
    """
    from scipy.optimize import minimize_scalar
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if not len(z):
        return float(bounds[0])

    def nll(log_t):
        t = np.exp(log_t)
        zz = z / t
        m = zz.max(axis=1)
        lse = m + np.log(np.exp(zz - m[:, None]).sum(axis=1))
        return float(np.mean(lse - zz[np.arange(len(y)), y]))

    low, high = np.log(bounds[0]), np.log(bounds[1])
    best = minimize_scalar(nll, bounds=(low, high), method='bounded',
                           options=dict(xatol=1e-4))
    # Brent stops near, not at, a bound: keep the bound when it is as good
    log_t = min((best.x, low, high), key=nll)
    return float(np.exp(log_t))


def calibration_temperature(logits: np.ndarray, labels: np.ndarray,
                            bounds: Tuple[float, float] = (1.0, 100.0)
                            ) -> float:
    """The temperature the product applies (``OpenSetCalibrationHook``):
    :func:`fit_temperature`'s, kept only if it also lowers the ECE of the
    same images; 1 (no scaling) otherwise.

    On ~45-image folds the NLL fit follows one or two confident mistakes:
    on the quick start's folds it raised the mean ECE from 2.42 to 2.76 %
    (``tools/analysis/open_set_study.py``, ``docs/trust.md``).

    Example:
        >>> # 18 right answers and one confident mistake: the NLL wants
        >>> # T = 1.7, which would make the right ones underconfident
        >>> calibration_temperature(np.array([[3., 0.]] * 18 + [[8., 0.]]),
        ...                         np.array([0] * 18 + [1]))
        1.0
    """
    t = fit_temperature(logits, labels, bounds)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, t), labels)
    return t if after < before else 1.0


def crossfit_temperature_scores(raw_scores: np.ndarray, labels: np.ndarray,
                                parts: int = 5, seed: int = 0,
                                bounds: Tuple[float, float] = (1.0, 100.0)
                                ) -> np.ndarray:
    """Temperature-scaled scores, each image's temperature fitted on other
    images only.

    The images are cut into ``parts`` (stratified when every class has that
    many images, sklearn); each part's scores use the temperature that
    :func:`calibration_temperature` fits on the remaining parts. The ECE of the
    result is what a user can expect on new images, where the ECE of scores
    scaled with a temperature fitted on the same images is optimistic (one
    parameter fitted in-sample: small, but not nothing on a 46-image fold).

    Args:
        raw_scores (np.ndarray): ``(N, C)`` scores at T = 1 (softmax of the
            logits; their log is the logits up to a per-row constant, which
            a temperature leaves alone).
        labels (np.ndarray): ``(N,)`` true labels.
        parts (int): Parts (at least 2, at most N).
        seed (int): Shuffle seed of the cut.
        bounds (tuple): Passed to :func:`calibration_temperature`.

    Returns:
        np.ndarray: ``(N, C)`` scores.

    Example:
        >>> raw = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
        >>> crossfit_temperature_scores(raw, np.array([0, 0, 1, 1]),
        ...                             parts=2).shape
        (4, 2)
    """
    from sklearn.model_selection import KFold, StratifiedKFold
    raw = np.asarray(raw_scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if not 2 <= parts <= len(labels):
        raise ValueError(f'parts must be between 2 and the {len(labels)} '
                         f'images, got {parts}')
    logits = np.log(np.clip(raw, np.finfo(np.float64).tiny, None))
    stratify = np.bincount(labels)[np.unique(labels)].min() >= parts
    cut = (StratifiedKFold if stratify else KFold)(
        parts, shuffle=True, random_state=seed)
    out = np.empty_like(raw)
    for fit, held in cut.split(logits, labels):
        out[held] = softmax(logits[held], calibration_temperature(
            logits[fit], labels[fit], bounds))
    return out


def keep_known_threshold(known_scores: Sequence[float],
                         keep: float = 0.95) -> float:
    """The novelty threshold that keeps ``keep`` of ``known_scores`` (a
    score above it is "unknown").

    Example:
        >>> keep_known_threshold(np.arange(101), 0.95)
        95.0
    """
    known = np.asarray(known_scores, dtype=np.float64)
    if not len(known):
        return float('inf')
    return float(np.quantile(known, keep))


def open_set_report(known: Sequence[float], unknown: Sequence[float],
                    threshold: float) -> Dict[str, float]:
    """AUROC of novelty scores (unknown = positive, sklearn) and the shares
    flagged at ``threshold`` among known and unknown images."""
    from sklearn.metrics import roc_auc_score
    known = np.asarray(known, dtype=np.float64)
    unknown = np.asarray(unknown, dtype=np.float64)
    out = dict(known=len(known), unknown=len(unknown),
               threshold=float(threshold),
               known_flagged=float(np.mean(known > threshold))
               if len(known) else float('nan'),
               unknown_flagged=float(np.mean(unknown > threshold))
               if len(unknown) else float('nan'), auroc=float('nan'))
    if len(known) and len(unknown):
        y = np.r_[np.zeros(len(known)), np.ones(len(unknown))]
        out['auroc'] = float(roc_auc_score(y, np.r_[known, unknown]))
    return out
