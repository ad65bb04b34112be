import numpy as np
import polars as pl

from commentclf.ensemble import choose_weight, gate, gate_proba, pseudo_label_accuracy, soft, soft_proba

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]
# Hand-made: rows are comments, columns follow LABELS.
P_SETFIT = np.array([[0.1, 0.1, 0.8], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
P_LLM = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])


def test_gate_keeps_setfit_off_topic_else_llm():
    pred, conf = gate(P_SETFIT, P_LLM, gate_index=2)
    assert pred.tolist() == [2, 1, 1, 2]
    assert np.allclose(conf, [0.8, 0.8, 0.6, 0.6])  # each from the model that decided


def test_soft_is_weighted_mean():
    pred, conf = soft(P_SETFIT, P_LLM, 0.5)
    assert pred.tolist() == [2, 1, 1, 2]
    assert np.allclose(conf, [0.45, 0.55, 0.5, 0.7])
    assert soft(P_SETFIT, P_LLM, 0.0)[0].tolist() == P_SETFIT.argmax(1).tolist()
    assert soft(P_SETFIT, P_LLM, 1.0)[0].tolist() == P_LLM.argmax(1).tolist()


def test_rules_as_distributions():
    g = gate_proba(P_SETFIT, P_LLM, gate_index=2)
    assert np.allclose(g, [P_SETFIT[0], P_LLM[1], P_LLM[2], P_SETFIT[3]])  # the deciding model's whole row
    assert np.allclose(soft_proba(P_SETFIT, P_LLM, 0.25), 0.75 * P_SETFIT + 0.25 * P_LLM)
    assert np.allclose(g.sum(1), 1) and np.allclose(soft_proba(P_SETFIT, P_LLM, 0.25).sum(1), 1)


def test_weight_chosen_on_dev_metric():
    gold = ["off_topic", "pro_russia", "pro_russia", "off_topic"]
    w, scores = choose_weight(P_SETFIT, P_LLM, gold, LABELS, "pro_russia", [0.0, 0.5, 1.0], "macro_f1")
    assert scores[0.0] < scores[0.5] and w == 0.5  # ties broken toward the smaller LLM weight


def test_temperature_scaling_sharpens_flat_but_right_probabilities():
    from commentclf.ensemble import apply_calibration, fit_temperature

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
    from commentclf.ensemble import apply_calibration, fit_calibration

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


def test_pseudo_label_accuracy_kept_rows_and_every_matched_row():
    pseudo = pl.DataFrame(
        {
            "text": ["a", "b", "c", "d", "not in the gold file"],
            "label": ["pro_russia", "pro_ukraine", "off_topic", "pro_russia", "pro_russia"],
            "setfit_label": ["pro_russia", "off_topic", "pro_ukraine", "off_topic", "pro_russia"],
            "llm_label": ["pro_ukraine", "pro_ukraine", "pro_russia", "pro_russia", "pro_russia"],
            "kept": [True, True, False, False, True],
        }
    )
    truth = pl.DataFrame(
        {
            "text": ["d", "c", "b", "a", "only gold"],
            "label": ["pro_russia", "off_topic", "off_topic", "pro_russia", "off_topic"],
        }
    )
    acc = pseudo_label_accuracy(pseudo, truth, LABELS, "pro_russia")
    assert acc["rows_matched"] == 4 and acc["rows_kept_matched"] == 2
    assert acc["kept_accuracy"] == 0.5  # a right, b wrong
    assert acc["kept"]["f1"]["pro_russia"] == 1.0
    assert acc["all_rows_accuracy"] == {"label": 0.75, "setfit_label": 0.5, "llm_label": 0.25}
    none = pseudo_label_accuracy(pseudo, truth[4:], LABELS, "pro_russia")
    assert none["rows_matched"] == 0 and none["kept_accuracy"] is None and none["all_rows_accuracy"]["label"] is None


def test_fitted_ensemble_round_trips_and_applies_calibration_then_rule(tmp_path):
    from commentclf.ensemble import Ensemble, apply_calibration
    from conftest import section

    gold = ["off_topic", "pro_russia", "pro_russia", "off_topic"]
    cfg = section("label", rule="soft", calibrate="temperature", soft_weights=[0.0, 0.5, 1.0], gate_label="off_topic")
    ensemble, scores = Ensemble.fit(P_SETFIT, P_LLM, gold, LABELS, "pro_russia", cfg)
    assert set(scores) == {0.0, 0.5, 1.0} and ensemble.weight in scores
    ensemble.save(tmp_path / "ensemble.json")
    loaded = Ensemble.load(tmp_path / "ensemble.json")
    assert loaded == ensemble
    ps, pl = (apply_calibration(p, ensemble.calibration[m]) for p, m in ((P_SETFIT, "setfit"), (P_LLM, "llm")))
    expected = soft_proba(ps, pl, ensemble.weight)
    assert np.allclose(loaded.predict_proba(P_SETFIT, P_LLM), expected)
    gated = Ensemble(LABELS, "gate", 0.0, "off_topic", ensemble.calibration)
    assert np.allclose(gated.predict_proba(P_SETFIT, P_LLM), gate_proba(ps, pl, gate_index=2))
