"""Calibration maths: ECE, temperature, keep-known threshold, AUROC."""
import numpy as np
import pytest

from rock_plugin.evaluation.functional.calibration import (
    calibration_bins, expected_calibration_error, fit_temperature,
    keep_known_threshold, open_set_report, softmax)


def test_ece_of_known_cases():
    # perfectly calibrated: confidence 0.75, 3 of 4 right
    scores = np.tile([0.75, 0.25], (4, 1))
    labels = np.array([0, 0, 0, 1])
    assert expected_calibration_error(scores, labels) == pytest.approx(0)
    # always 1.0 confident, half right: a gap of 0.5
    scores = np.tile([1.0, 0.0], (4, 1))
    assert expected_calibration_error(scores, np.array([0, 1, 0, 1])) == \
        pytest.approx(0.5)
    bins = calibration_bins(scores, np.array([0, 1, 0, 1]))
    assert bins['count'].sum() == 4 and bins['count'][-1] == 4
    assert np.isnan(bins['accuracy'][0])  # empty bins are NaN, not 0


def test_ece_weights_bins_by_count():
    scores = np.array([[0.95, 0.05]] * 8 + [[0.55, 0.45]] * 2)
    labels = np.array([0] * 8 + [1, 1])  # high bin 100 % right, low 0 %
    expected = (8 * 0.05 + 2 * 0.55) / 10
    assert expected_calibration_error(scores, labels) == \
        pytest.approx(expected)


def test_fit_temperature_recovers_an_overconfident_model():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    t = fit_temperature(true_logits * 3, labels)  # 3x too sharp
    assert t == pytest.approx(3, rel=0.1)
    before = expected_calibration_error(softmax(true_logits * 3), labels)
    after = expected_calibration_error(softmax(true_logits * 3, t), labels)
    assert after < before / 2


def test_fit_temperature_never_sharpens_by_default():
    # a fold without errors would want T -> 0: the lower bound 1 holds
    logits = np.array([[2.0, 0.0, 0.0]] * 20)
    labels = np.zeros(20, dtype=int)
    assert fit_temperature(logits, labels) == 1.0
    assert fit_temperature(logits, labels, (0.05, 10)) < 0.5


def test_keep_known_threshold_and_report():
    known = np.arange(100, dtype=float)
    threshold = keep_known_threshold(known, 0.95)
    assert np.mean(known > threshold) == pytest.approx(0.05, abs=0.011)
    report = open_set_report(known, known + 1000, threshold)
    assert report['auroc'] == 1.0 and report['unknown_flagged'] == 1.0
    assert report['known_flagged'] == pytest.approx(0.05, abs=0.011)
    assert np.isnan(open_set_report(known, [], threshold)['auroc'])
    assert keep_known_threshold([]) == float('inf')


def test_crossfit_scores_use_temperatures_fitted_on_other_images():
    from sklearn.model_selection import StratifiedKFold

    from rock_plugin.evaluation.functional.calibration import (
        calibration_temperature, crossfit_temperature_scores)
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (600, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(true_logits)])
    raw = softmax(true_logits * 3)  # an overconfident model, at T = 1
    out = crossfit_temperature_scores(raw, labels, parts=5, seed=1)
    # each part scaled by the temperature of the other four parts alone
    logits = np.log(raw)
    for fit, held in StratifiedKFold(5, shuffle=True,
                                     random_state=1).split(raw, labels):
        t = calibration_temperature(logits[fit], labels[fit])
        np.testing.assert_allclose(out[held], softmax(logits[held], t))
        assert t == pytest.approx(3, rel=0.2)
    before = expected_calibration_error(raw, labels)
    in_sample = expected_calibration_error(
        softmax(logits, fit_temperature(logits, labels)), labels)
    apart = expected_calibration_error(out, labels)
    assert apart < before / 2 and apart >= in_sample - 0.01
    assert (out.argmax(1) == raw.argmax(1)).all()  # T never moves a top-1


def test_crossfit_on_a_small_fold_and_bad_parts():
    from rock_plugin.evaluation.functional.calibration import \
        crossfit_temperature_scores
    # a class with fewer images than parts: an unstratified cut, still
    # every image scored once
    raw = softmax(np.random.default_rng(0).normal(0, 3, (9, 3)))
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    out = crossfit_temperature_scores(raw, labels, parts=3)
    assert out.shape == raw.shape and np.allclose(out.sum(1), 1)
    for parts in (1, 10):
        with pytest.raises(ValueError, match='parts must be between 2 and '
                           'the 9 images'):
            crossfit_temperature_scores(raw, labels, parts=parts)


def test_calibration_temperature_is_the_fit_only_where_it_lowers_the_ece():
    from rock_plugin.evaluation.functional.calibration import \
        calibration_temperature
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (2000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    assert calibration_temperature(true_logits * 3, labels) == \
        fit_temperature(true_logits * 3, labels) > 2
    # 18 right answers at 95 % and one mistake at 99.97 %: the NLL fit
    # (T = 1.7) softens the mistake and makes the right answers
    # underconfident, the ECE rises from 0.8 to 19 %: T = 1 is kept
    logits = np.array([[3.0, 0.0]] * 18 + [[8.0, 0.0]])
    labels = np.array([0] * 18 + [1])
    assert fit_temperature(logits, labels) == pytest.approx(1.705, abs=0.01)
    assert calibration_temperature(logits, labels) == 1.0
