import numpy as np
import pytest

from commentclf.annotation.forecast import (
    f1_per_label,
    fit_power_law,
    forecast,
    forecast_report,
    power_law,
    stratified_order,
)
from commentclf.errors import DataError
from conftest import section


def test_power_law_fit_recovers_known_parameters():
    sizes = np.array([60.0, 120, 180, 240, 300])
    truth = (0.8, 2.5, 0.6)
    noise = np.random.default_rng(0).normal(0, 0.001, len(sizes))
    a, b, c = fit_power_law(sizes, power_law(sizes, *truth) + noise)
    assert a == pytest.approx(truth[0], abs=0.03)
    assert c == pytest.approx(truth[2], abs=0.15)
    # what the forecast uses: the extrapolated gain from 300 to 400 labels
    gain = power_law(400.0, a, b, c) - power_law(300.0, a, b, c)
    assert gain == pytest.approx(power_law(400.0, *truth) - power_law(300.0, *truth), abs=0.002)


def test_a_falling_curve_forecasts_no_gain_rather_than_a_loss():
    sizes = np.array([60.0, 120, 180, 240, 300])
    a, b, c = fit_power_law(sizes, np.array([0.62, 0.61, 0.60, 0.60, 0.59]))
    assert b >= 0 and power_law(400.0, a, b, c) - power_law(300.0, a, b, c) >= 0


def test_f1_per_label_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert f1_per_label(y, pred, 3) == pytest.approx(f1_score(y, pred, average=None))


def test_every_prefix_of_the_stratified_order_keeps_the_label_mix():
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    order = stratified_order(y, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(100))
    for k in (10, 20, 50):
        counts = np.bincount(y[order[:k]], minlength=3)
        assert np.abs(counts - np.array([0.6, 0.3, 0.1]) * k).max() <= 1


def test_curve_sizes_are_the_training_rows_whatever_the_shuffles():
    from commentclf.annotation.forecast import learning_curve

    x, y = blobs(200, 0)
    for shuffles in (1, 3):
        cfg = section("suggest").forecast.model_copy(update={"shuffles": shuffles})
        sizes = learning_curve(x, y, cfg, seed=0).sizes  # 5 folds: 160 training rows each at 100 %
        assert sizes == pytest.approx(np.array(cfg.fractions) * 160, abs=1)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping Gaussian classes in 20 dimensions (one rare): a model that gains from more rows."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[0.5, 0.2, 0.3])
    centres = rng.normal(0, 0.45, (3, 20))
    return centres[y] + rng.normal(0, 1, (n, 20)), y


def test_forecast_gain_is_positive_ordered_and_deterministic():
    x, y = blobs(300, 0)
    cfg = section("suggest").forecast.model_copy(update={"bootstrap": 40, "shuffles": 2})
    first = forecast(x, y, minority=1, cfg=cfg, seed=0)
    assert first.labelled == 300 and set(first.gains) == {"macro_f1", "minority_f1"}
    for by_added in first.gains.values():
        (g100, lo100, hi100), (g300, lo300, hi300) = by_added[100], by_added[300]
        assert g100 >= 0 and lo100 <= g100 <= hi100 and lo300 <= g300 <= hi300
        assert g300 > g100  # more labels, more gain; less per label
        assert g300 < 3 * g100 + 1e-9
    assert forecast(x, y, minority=1, cfg=cfg, seed=0).gains == first.gains
    line = first.lines("rare")[0]
    assert line.startswith("100 more labels: macro-F1 +") and "rare F1" in line and "(90% interval)" in line


def test_forecast_says_which_label_is_too_small():
    x, y = blobs(100, 0)
    y[y == 1] = 0
    y[:3] = 1  # three rows of label 1: fewer than the five folds
    with pytest.raises(DataError, match="at least 5 labelled rows"):
        forecast(x, y, minority=1, cfg=section("suggest").forecast, seed=0)
    # the suggest stage goes on without a forecast and says why
    block, lines = forecast_report(x, y, 1, "rare", section("suggest").forecast, seed=0)
    assert "at least 5 labelled rows" in block["skipped"] and lines[0].startswith("no forecast: ")
