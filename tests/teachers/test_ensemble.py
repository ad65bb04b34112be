import numpy as np
import polars as pl

from commentclf.teachers.ensemble import Ensemble, fit_pool_weights, pool, pseudo_label_accuracy

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]


def noisy_teacher(gold: np.ndarray, right: float, rng) -> np.ndarray:
    """Probabilities that put `right` on the true label of each row (the rest spread evenly)."""
    p = np.full((len(gold), 3), (1 - right) / 2)
    p[np.arange(len(gold)), gold] = right
    return p


def test_pool_weights_give_a_useless_teacher_about_zero():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    good = noisy_teacher(gold, 0.7, rng)
    useless = rng.dirichlet(np.ones(3), 300)  # knows nothing about the labels
    weights = fit_pool_weights({"good": good, "useless": useless}, gold)
    assert weights["useless"] < 0.02 and weights["good"] > 0.98
    assert abs(sum(weights.values()) - 1) < 1e-9


def test_pool_weights_share_between_two_complementary_teachers():
    """Each teacher is right on a different half of the rows: the pool needs both."""
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 400)
    a, b = noisy_teacher(gold, 0.8, rng), noisy_teacher(gold, 0.8, rng)
    a[200:], b[:200] = 1 / 3, 1 / 3
    weights = fit_pool_weights({"a": a, "b": b}, gold)
    assert 0.3 < weights["a"] < 0.7


def test_pool_renormalises_over_the_teachers_available_on_a_row():
    p1 = np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2]])
    p2 = np.array([[np.nan] * 3, [0.0, 0.0, 1.0]])  # not out-of-fold on row 0
    out = pool({"a": p1, "b": p2}, {"a": 0.25, "b": 0.75})
    assert np.allclose(out[0], p1[0])  # only `a` there
    assert np.allclose(out[1], 0.25 * p1[1] + 0.75 * p2[1])
    assert np.allclose(out.sum(1), 1)


def test_fitted_ensemble_round_trips_and_applies_calibration_pool_and_prior(tmp_path):
    from commentclf.calibration import apply_calibration
    from conftest import section

    rng = np.random.default_rng(2)
    gold = rng.integers(0, 3, 200)
    oof = {"logreg": noisy_teacher(gold, 0.6, rng), "setfit": np.full((200, 3), np.nan)}
    oof["setfit"][150:] = noisy_teacher(gold[150:], 0.5, rng)  # dev rows only
    cfg = section("label", calibrate="temperature", prior_correction="nll")
    ensemble = Ensemble.fit(oof, gold, LABELS, cfg)
    ensemble.save(tmp_path / "ensemble.json")
    loaded = Ensemble.load(tmp_path / "ensemble.json")
    assert loaded == ensemble and loaded.teachers == ["logreg", "setfit"]
    fresh = {t: noisy_teacher(gold[:5], 0.6, rng) for t in oof}
    calibrated = {t: apply_calibration(fresh[t], ensemble.calibration[t]) for t in oof}
    expected = apply_calibration(pool(calibrated, ensemble.weights), {"temperature": 1.0, "bias": ensemble.prior_bias})
    assert np.allclose(loaded.predict_proba(fresh), expected)


def test_prior_correction_restores_a_label_the_pool_underweights():
    from conftest import section

    gold = np.array([0, 1, 2] * 40)
    leaning = np.tile([[0.6, 0.15, 0.25], [0.45, 0.35, 0.2], [0.3, 0.1, 0.6]], (40, 1))  # label 1 never wins
    plain = Ensemble.fit({"t": leaning}, gold, LABELS, section("label", calibrate="none", prior_correction="none"))
    assert plain.prior_bias == [0.0, 0.0, 0.0] and (plain.predict_proba({"t": leaning}).argmax(1) != 1).all()
    for method in ("nll", "macro_f1"):
        fixed = Ensemble.fit({"t": leaning}, gold, LABELS, section("label", calibrate="none", prior_correction=method))
        assert (fixed.predict_proba({"t": leaning}).argmax(1) == gold).all(), method


def test_macro_f1_prior_keeps_the_rare_label_that_nll_thins_out():
    """Rare label 1 (20 % of rows) is never the most probable: the NLL bias, fitted to the prior, leaves it
    rare in the argmax, while the macro-F1 bias gives it back its rows."""
    from conftest import section

    rng = np.random.default_rng(3)
    gold = rng.choice(3, 500, p=[0.5, 0.2, 0.3])
    p = np.full((500, 3), 0.2)
    p[np.arange(500), gold] += 0.25
    p[:, 0] += 0.2  # every row leans to the frequent label
    p = p / p.sum(1, keepdims=True)
    p = np.clip(p + rng.normal(0, 0.03, p.shape), 0.01, 1)
    p = p / p.sum(1, keepdims=True)
    f1 = {}
    for method in ("nll", "macro_f1"):
        e = Ensemble.fit({"t": p}, gold, LABELS, section("label", calibrate="none", prior_correction=method))
        pred = e.predict_proba({"t": p}).argmax(1)
        f1[method] = ((pred == 1) & (gold == 1)).sum() * 2 / ((pred == 1).sum() + (gold == 1).sum())
    assert f1["macro_f1"] > f1["nll"] + 0.1


def test_pseudo_label_accuracy_of_every_teacher_on_every_matched_row():
    pseudo = pl.DataFrame(
        {
            "text": ["a", "b", "c", "d", "not in the gold file"],
            "label": ["pro_russia", "pro_ukraine", "off_topic", "pro_russia", "pro_russia"],
            "setfit_label": ["pro_russia", "off_topic", "pro_ukraine", "off_topic", "pro_russia"],
            "logreg_label": ["pro_ukraine", "pro_ukraine", "pro_russia", "pro_russia", "pro_russia"],
            "kept": [True, True, False, False, True],
        }
    )
    truth = pl.DataFrame(
        {
            "text": ["d", "c", "b", "a", "only gold"],
            "label": ["pro_russia", "off_topic", "off_topic", "pro_russia", "off_topic"],
        }
    )
    acc = pseudo_label_accuracy(pseudo, truth, LABELS, "pro_russia", ["setfit", "logreg"])
    assert acc["rows_matched"] == 4 and acc["rows_kept_matched"] == 2
    assert acc["kept_accuracy"] == 0.5  # a right, b wrong
    rows = acc["all_rows"]
    assert {n: r["accuracy"] for n, r in rows.items()} == {"ensemble": 0.75, "setfit": 0.5, "logreg": 0.25}
    assert rows["ensemble"]["f1"]["pro_russia"] == 1.0 and rows["ensemble"]["support"]["off_topic"] == 2
    none = pseudo_label_accuracy(pseudo, truth[4:], LABELS, "pro_russia", ["setfit"])
    assert none["rows_matched"] == 0 and none["kept_accuracy"] is None and none["all_rows"]["ensemble"] is None
