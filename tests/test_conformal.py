"""Mondrian conformal sets: each class's coverage reached on fresh rows, and what the sets are used for."""

import numpy as np
import pytest

from commentclf.conformal import ConformalSets, set_labels, set_names, set_report
from commentclf.errors import DataError


def scored(n, prior, rng, signal=1.5):
    """A 3-class model's calibrated-looking scores for rows of the given class mix, and their labels."""
    y = rng.choice(3, size=n, p=prior)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += signal
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), y


def test_every_class_reaches_its_coverage_on_fresh_rows():
    rng = np.random.default_rng(0)
    coverage = []
    for _ in range(30):  # coverage holds on average over calibration sets: average many
        cal = ConformalSets.fit(*scored(300, [0.6, 0.1, 0.3], rng))  # the rare class has ~30 rows
        proba, y = scored(1000, [0.6, 0.1, 0.3], rng)
        coverage.append(list(set_report(cal.sets(proba, 0.1), y, ["a", "b", "c"])["coverage"].values()))
    mean = np.mean(coverage, axis=0)
    assert (mean >= 0.88).all() and (mean <= 0.96).all(), mean  # >= 0.9 up to the 30 draws' noise
    # a marginal (not class-conditional) set would under-cover the rare class: Mondrian is what holds it up
    assert mean[1] >= 0.88


def test_sets_shrink_as_alpha_grows_and_a_sure_model_gives_singletons():
    rng = np.random.default_rng(1)
    cal = ConformalSets.fit(*scored(400, [1 / 3] * 3, rng, signal=4.0))
    proba, y = scored(500, [1 / 3] * 3, rng, signal=4.0)
    sizes = [cal.sets(proba, a).sum(1).mean() for a in (0.02, 0.1, 0.3)]
    assert sizes[0] >= sizes[1] >= sizes[2]
    report = set_report(cal.sets(proba, 0.1), y, ["a", "b", "c"])
    assert report["singleton_share"] > 0.8 and report["singleton_accuracy"] > 0.9


def test_labels_names_and_abstention():
    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.2, 0.3, 0.5]])
    sets = np.array([[True, False, False], [True, True, False], [False, False, False]])
    assert set_names(sets, ["a", "b", "c"]) == ["a", "a|b", ""]
    assert set_labels(proba, sets, ["a", "b", "c"], abstain=False) == ["a", "a", "c"]
    assert set_labels(proba, sets, ["a", "b", "c"], abstain=True) == ["a", None, None]


def test_round_trip_and_bad_input():
    rng = np.random.default_rng(2)
    proba, y = scored(60, [1 / 3] * 3, rng)
    cal = ConformalSets.fit(proba, y)
    again = ConformalSets.from_dict(cal.to_dict(), 3)
    assert np.array_equal(again.sets(proba, 0.1), cal.sets(proba, 0.1))
    with pytest.raises(DataError, match="no calibration row of class index \\[2\\]"):
        ConformalSets.fit(proba[y != 2], y[y != 2])
    with pytest.raises(DataError, match="alpha must be between 0 and 1"):
        cal.sets(proba, 1.0)
