"""Temperature scaling and its bias variant, and the measures of calibration (ECE, Brier, NLL, reliability)."""

import numpy as np

from commentclf.calibration import (
    apply_calibration,
    calibration_report,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    reliability_curve,
)


def test_temperature_scaling_sharpens_flat_but_right_probabilities():
    def apply_temperature(p, t):
        return apply_calibration(p, {"temperature": t, "bias": [0.0, 0.0, 0.0]})

    flat = np.array([[0.40, 0.35, 0.25], [0.30, 0.45, 0.25], [0.30, 0.25, 0.45]] * 10)
    gold = np.array([0, 1, 2] * 10)
    t = fit_temperature(flat, gold)
    sharp = apply_temperature(flat, t)
    assert t < 0.5 and (sharp.argmax(1) == flat.argmax(1)).all() and sharp.max(1).min() > 0.6
    assert np.allclose(apply_temperature(flat, 1.0), flat)


def test_bias_calibration_corrects_a_model_that_leans_to_one_label():
    """An LLM that puts most mass on label 0 but still ranks the comments: the fitted bias restores the
    right argmax, which temperature alone (monotone per row) cannot do."""
    leaning = np.array([[0.80, 0.15, 0.05], [0.60, 0.35, 0.05], [0.60, 0.05, 0.35]] * 10)
    gold = np.array([0, 1, 2] * 10)
    temp = fit_calibration(leaning, gold, "temperature")
    assert temp["bias"] == [0.0, 0.0, 0.0]
    assert (apply_calibration(leaning, temp).argmax(1) == 0).all()
    calib = fit_calibration(leaning, gold, "temperature_bias")
    assert calib["bias"][0] == 0.0 and calib["bias"][1] > 0 and calib["bias"][2] > 0
    assert (apply_calibration(leaning, calib).argmax(1) == gold).all()
    identity = fit_calibration(leaning, gold, "none")
    assert np.allclose(apply_calibration(leaning, identity), leaning)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    # 10 rows at 0.8 confidence, 8 of them right: calibrated; the same rows at 0.99: overconfident by 0.19
    gold = np.array([0] * 8 + [1] * 2)
    right = np.tile([0.8, 0.1, 0.1], (10, 1))
    assert expected_calibration_error(right, gold) < 1e-9
    over = np.tile([0.99, 0.005, 0.005], (10, 1))
    assert abs(expected_calibration_error(over, gold) - 0.19) < 1e-9
    curve = reliability_curve(over, gold)
    assert curve == [{"confidence": 0.99, "accuracy": 0.8, "rows": 10}]


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 2000)
    logits = rng.normal(0, 1, (2000, 3))
    logits[np.arange(2000), gold] += 1.0
    over = np.exp(4 * logits) / np.exp(4 * logits).sum(1, keepdims=True)  # right ranking, far too sure
    fit, test = slice(0, 1000), slice(1000, 2000)
    calibrated = apply_calibration(over[test], fit_calibration(over[fit], gold[fit], "temperature"))
    before, after = calibration_report(over[test], gold[test]), calibration_report(calibrated, gold[test])
    assert after["ece"] < before["ece"] / 3 and after["nll"] < before["nll"] and after["brier"] < before["brier"]
    assert fit_temperature(over[fit], gold[fit]) > 2
