"""`commentclf prevalence`: class shares with intervals that survive a prior shift, per group, resumable."""

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from test_streaming import LABELS, FakeStudent, comments

from commentclf.errors import DataError
from commentclf.inference.prevalence import PrevalenceOptions, markdown, prevalence_of_file, read_heldout
from commentclf.quantification import (
    METHODS,
    HeldOut,
    adjusted_posteriors,
    choose_method,
    estimate,
    scored_against_truth,
)


def scored(prior, n, rng):
    """Rows of a weak 3-class model (as a few hundred labels give): its scores and the true labels."""
    y = rng.choice(3, size=n, p=prior)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += np.array([1.2, 0.8, 1.0])[y]  # the rare middle class is the hardest
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), y


def test_adjusted_methods_recover_a_prior_shift_that_counting_misses():
    rng = np.random.default_rng(0)
    heldout = HeldOut(*scored([1 / 3, 1 / 3, 1 / 3], 3000, rng))  # the seed: balanced
    proba, y = scored([0.6, 0.1, 0.3], 20_000, rng)  # the pool: the middle class rare
    truth = np.bincount(y, minlength=3) / len(y)
    shares = estimate(heldout, proba, LABELS, ("cc", "acc", "pacc"), n_boot=30, seed=0)
    error = {m: max(abs(s[label]["estimate"] - truth[j]) for j, label in enumerate(LABELS)) for m, s in shares.items()}
    assert error["cc"] > 0.08, error  # counting a weak model's labels pulls every share towards the seed's
    assert error["acc"] < 0.03 and error["pacc"] < 0.03, error
    for j, label in enumerate(LABELS):  # and the adjusted intervals hold the truth
        assert shares["pacc"][label]["low"] <= truth[j] <= shares["pacc"][label]["high"], (label, shares["pacc"])


def test_auto_chooses_on_shifted_samples_of_the_heldout_rows_alone():
    rng = np.random.default_rng(3)
    heldout = HeldOut(*scored([1 / 3, 1 / 3, 1 / 3], 400, rng))
    choice = choose_method(heldout, folds=4, samples=20, seed=0)
    assert set(choice["errors"]) == set(METHODS) and choice["folds"] == 4
    # shifted samples are what counting gets wrong and the adjusted methods correct
    assert choice["method"] != "cc" and choice["errors"]["cc"] > 1.2 * choice["errors"][choice["method"]]
    assert choose_method(heldout, folds=4, samples=20, seed=0) == choice  # seeded
    few = HeldOut(heldout.proba[:5], np.array([0, 1, 2, 0, 1]))
    with pytest.raises(DataError, match="1 row\\(s\\) of some label"):
        choose_method(few, folds=4, samples=5, seed=0)


def test_adjusted_posteriors_follow_the_shift_and_score_better_under_it():
    rng = np.random.default_rng(4)
    heldout = HeldOut(*scored([1 / 3, 1 / 3, 1 / 3], 3000, rng))
    proba, y = scored([0.6, 0.1, 0.3], 5000, rng)
    prior, posteriors = adjusted_posteriors(heldout, proba)
    assert abs(prior[1] - 0.1) < abs(proba[:, 1].mean() - 0.1) / 2 and np.allclose(posteriors.sum(1), 1)
    assert posteriors[:, 1].mean() < proba[:, 1].mean()  # the rare class's scores come down with its share
    # argmax of posteriors at the right prior is the accuracy-optimal label; it buys accuracy with the rare
    # class's recall, so macro-F1 goes the other way (what the prevalence stage reports on real data)
    assert (posteriors.argmax(1) == y).mean() > (proba.argmax(1) == y).mean()
    assert (posteriors.argmax(1) == 1).sum() < (proba.argmax(1) == 1).sum()


def test_reweighting_to_a_known_prior_calibrates_the_scores_under_the_shift():
    from commentclf.calibration import calibration_report

    rng = np.random.default_rng(5)
    means = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])

    def bayes(prior, n):
        """Rows drawn at `prior` and scored by the exact posteriors under a uniform prior: calibrated where the
        classes are balanced, as the student's scores are on the calib rows' prior."""
        y = rng.choice(3, size=n, p=prior)
        x = means[y] + rng.normal(0, 1, (n, 2))
        log_lik = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(2)
        p = np.exp(log_lik - log_lik.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True), y

    heldout = HeldOut(*bayes([1 / 3, 1 / 3, 1 / 3], 3000), recalibrate=False)  # the re-weighting's arithmetic
    proba, y = bayes([0.6, 0.1, 0.3], 5000)
    own = np.bincount(heldout.y, minlength=3) / len(heldout.y)
    assert np.allclose(adjusted_posteriors(heldout, proba, own)[1], proba)  # to its own prior: unchanged
    prior, reweighted = adjusted_posteriors(heldout, proba, np.array([0.6, 0.1, 0.3]))
    assert prior.tolist() == [0.6, 0.1, 0.3] and np.allclose(reweighted.sum(1), 1)
    before, after = calibration_report(proba, y), calibration_report(reweighted, y)
    assert after["nll"] < before["nll"] and after["brier"] < before["brier"]
    # the rare class's mean score meets its share once re-weighted, and stays far from it before
    assert abs(reweighted[:, 1].mean() - 0.1) < 0.02 < abs(proba[:, 1].mean() - 0.1)


SEED_PRIOR = [0.47, 0.25, 0.28]  # RUW's seed


def tilted(prior, n, rng):
    """Rows drawn at `prior`, scored by the exact posteriors at the seed's prior, then tilted as a class-weighted
    student's are: over-confident (T = 0.5) and leaning away from the frequent first class, so that their mean
    no longer matches the class shares."""
    means = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    y = rng.choice(3, size=n, p=prior)
    x = means[y] + rng.normal(0, 1, (n, 2))
    z = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(2) + np.log(SEED_PRIOR)
    z = z / 0.5 + np.log([0.25, 1.0, 1.0])
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


def test_recalibrating_on_the_heldout_rows_mends_scores_tilted_away_from_their_prior():
    rng = np.random.default_rng(6)
    p, y = tilted(SEED_PRIOR, 3000, rng)  # held out and measured at the same prior, as on RUW
    proba, truth_y = tilted(SEED_PRIOR, 5000, rng)
    truth = np.bincount(truth_y, minlength=3) / len(truth_y)

    def error(method, recalibrate, rows=proba, true=truth):
        s = estimate(HeldOut(p, y, recalibrate), rows, LABELS, (method,), n_boot=20, seed=0)[method]
        return max(abs(s[label]["estimate"] - true[j]) for j, label in enumerate(LABELS)), s

    tilted_error, _ = error("pcc", False)
    fixed_error, fixed = error("pcc", True)
    assert tilted_error > 0.05 and fixed_error < 0.02, (tilted_error, fixed_error)
    assert all(fixed[label]["low"] <= truth[j] <= fixed[label]["high"] for j, label in enumerate(LABELS)), fixed
    # under a shift EMQ needs the same mending: the re-weighting assumes scores calibrated to the held-out prior
    shifted, shifted_y = tilted([0.6, 0.1, 0.3], 5000, rng)
    shifted_truth = np.bincount(shifted_y, minlength=3) / len(shifted_y)
    assert error("emq", True, shifted, shifted_truth)[0] < 0.03 < error("emq", False, shifted, shifted_truth)[0]
    # classify-and-count counts the model's own labels: recalibration leaves it alone
    assert error("cc", True)[1] == error("cc", False)[1]


def test_scored_against_truth_reports_error_width_and_coverage():
    est = {"pacc": {"a": {"estimate": 0.3, "low": 0.2, "high": 0.35}, "b": {"estimate": 0.7, "low": 0.68, "high": 0.8}}}
    out = scored_against_truth(est, {"a": 0.4, "b": 0.6})
    a = out["pacc"]["classes"]["a"]
    assert a["error"] == pytest.approx(0.1) and a["width"] == pytest.approx(0.15) and a["covers"] is False
    assert out["pacc"]["classes"]["b"]["covers"] is False and out["pacc"]["max_error"] == pytest.approx(0.1)


def test_adjust_prior_writes_each_rows_posteriors(tmp_path, model_file, heldout_file):
    clf = FakeStudent(model_file)
    opts = PrevalenceOptions(method="emq", bootstrap=10, adjust_prior=True, part_rows=40)
    report = prevalence_of_file(clf, groups_input(tmp_path), read_heldout(clf, heldout_file), tmp_path / "o", opts)
    adjusted = pl.read_parquet(tmp_path / "o" / "adjusted.parquet")
    assert len(adjusted) == report["rows_scored"] == 88 and set(adjusted["adjusted_label"]) <= set(LABELS)
    assert abs(sum(report["adjusted"]["prior"].values()) - 1) < 1e-6
    # the rows are re-weighted to the shares the report answers with
    pacc = prevalence_of_file(
        clf, groups_input(tmp_path), read_heldout(clf, heldout_file), tmp_path / "p", replace(opts, method="pacc")
    )
    assert pacc["adjusted"]["prior"] == {label: c["estimate"] for label, c in pacc["classes"].items()}


def test_fewer_heldout_rows_give_wider_intervals():
    rng = np.random.default_rng(1)
    proba, _ = scored([0.6, 0.1, 0.3], 5000, rng)
    many, few = HeldOut(*scored([1 / 3] * 3, 2000, rng)), HeldOut(*scored([1 / 3] * 3, 100, rng))

    def width(heldout):
        s = estimate(heldout, proba, LABELS, ("pacc",), n_boot=40, seed=0)["pacc"]
        return np.mean([s[label]["high"] - s[label]["low"] for label in LABELS])

    assert width(few) > 2 * width(many)


def test_heldout_rows_must_hold_every_label():
    rng = np.random.default_rng(2)
    p, y = scored([0.5, 0.0, 0.5], 200, rng)
    with pytest.raises(DataError, match=r"held-out rows have no \['pro_russia'\]"):
        estimate(HeldOut(p, y), p, LABELS, ("pacc",), n_boot=5, seed=0)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"FakeStudent's model: only its hash is read")
    return path


@pytest.fixture
def heldout_file(tmp_path):
    texts = [f"commentaire étiqueté {i} " + "y" * (i % 11) for i in range(60)]
    pl.DataFrame({"text": texts, "label": [LABELS[i % 3] for i in range(60)]}).write_parquet(tmp_path / "calib.parquet")
    return tmp_path / "calib.parquet"


def groups_input(tmp_path, n=90):
    df = comments(n).with_columns(article=pl.Series([f"a{i % 3}" if i < 85 else "small" for i in range(n)]))
    df.write_csv(tmp_path / "in.csv")
    return tmp_path / "in.csv"


def test_groups_add_up_to_the_whole_and_a_small_group_is_refused(tmp_path, model_file, heldout_file):
    clf = FakeStudent(model_file)
    held = read_heldout(clf, heldout_file)
    opts = PrevalenceOptions(method="pacc", by="article", bootstrap=10, min_group_rows=10, part_rows=25)
    report = prevalence_of_file(clf, groups_input(tmp_path), held, tmp_path / "out", opts)
    assert report["rows"] == 90 and report["rows_scored"] == 88  # two empty texts: no score, no share
    groups = report["groups"]
    assert sum(g["rows"] for g in groups.values()) == report["rows_scored"]
    overall_counts = {label: sum(g["counts"][label] for g in groups.values()) for label in LABELS}
    assert sum(overall_counts.values()) == 88
    assert "refused" in groups["small"] and "shares" not in groups["small"] and groups["small"]["rows"] == 5
    for name in ("a0", "a1", "a2"):
        s = groups[name]["shares"]
        assert all(0 <= s[x]["low"] <= s[x]["high"] <= 1 for x in LABELS)
    assert set(report["methods"]) == {"cc", "pcc", "acc", "pacc", "emq"} and report["default_method"] == "pacc"
    assert report["classes"] == report["intervals"]["pacc"] and "choice" not in report  # asked for by name
    table = markdown(report)
    assert all(f"| {label} |" in table for label in LABELS) and "| small | 5 | — | — | — |" in table


def test_prevalence_resumes_after_a_crash_and_refuses_a_missing_column(tmp_path, model_file, heldout_file):
    held = read_heldout(FakeStudent(model_file), heldout_file)
    opts, path = PrevalenceOptions(bootstrap=10, part_rows=30), groups_input(tmp_path)
    crashing = FakeStudent(model_file, fail_after=1)
    with pytest.raises(RuntimeError, match="killed"):
        prevalence_of_file(crashing, path, held, tmp_path / "out", opts)
    resumed = FakeStudent(model_file)
    report = prevalence_of_file(resumed, path, held, tmp_path / "out", opts)
    assert resumed.calls == 2 and report["rows"] == 90  # the two unfinished parts of three, not the first
    with pytest.raises(DataError, match="no column 'month' to group by"):
        prevalence_of_file(resumed, path, held, tmp_path / "out", PrevalenceOptions(by="month"))
    with pytest.raises(DataError, match="--method must be auto or one of"):
        prevalence_of_file(resumed, path, held, tmp_path / "out", PrevalenceOptions(method="avg"))


def test_a_heldout_file_with_foreign_labels_is_refused(tmp_path, model_file):
    pl.DataFrame({"text": ["un", "deux"], "label": ["pro_ukraine", "pro_mars"]}).write_csv(tmp_path / "h.csv")
    with pytest.raises(DataError, match=r"h\.csv: labels \['pro_mars'\] are not the model's"):
        read_heldout(FakeStudent(model_file), tmp_path / "h.csv")
