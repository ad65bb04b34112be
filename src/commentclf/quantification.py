"""Class shares with intervals (quantification): the estimators behind `commentclf prevalence` and the
prevalence stage.

Counting the student's labels (classify-and-count, CC) is biased whenever its errors differ across classes
or the measured rows' class mix differs from the seed's, and the seed's always differs: an analyst oversamples
the rare class before labelling. The adjusted methods correct for it with the model's misclassification rates,
measured on labelled rows no model trained on (the held-out rows: the calib split). The estimators are QuaPy's
(CC, PCC, ACC, PACC, EMQ/SLD), fed precomputed scores through a pass-through classifier, so rows are scored
once.

Every method but CC first recalibrates the scores on the held-out rows (`recalibrated`): the deployed
temperature fixes the student's confidence, not its class marginal, which class-weighted training and the
teachers' pseudo-labels tilt towards balanced classes; PCC and EMQ read the scores as probabilities calibrated
to the held-out rows' prior, and are as far off as that tilt without it.

Each share comes with a 95 % percentile bootstrap interval that resamples both the held-out rows (the rates'
uncertainty, which dominates: a few dozen rows) and the measured rows. Which method to trust is chosen on the
held-out rows alone (`choose_method`), never on a test or pool row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from commentclf.calibration import apply_calibration, fit_calibration
from commentclf.config import PrevalenceConfig
from commentclf.errors import DataError

METHODS = ("cc", "pcc", "acc", "pacc", "emq")
BOOTSTRAP_ROWS = 50_000
"""Measured rows resampled per bootstrap draw at most: past it the file's own sampling error (under a quarter
of a point) is nothing beside the held-out rows', and EMQ's iterations stay cheap on millions of rows."""
PROTOCOL_ROWS = 1_000
"""Rows of each shifted sample `choose_method` draws (with replacement) from a fold: a file worth quantifying
has thousands, where the sampling error of a share (about 1.5 points at 1,000) is small beside the rates'. At a
fold's own size, a few dozen rows, that sampling error dominates and favours the methods that do not correct."""


class _Scores(ClassifierMixin, BaseEstimator):
    """A 'classifier' whose input already is its output: QuaPy quantifies precomputed scores through it."""

    def __init__(self, n_classes: int = 2):
        self.n_classes = n_classes

    def fit(self, X, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X):
        return np.asarray(X)

    def predict(self, X):
        return np.asarray(X).argmax(1)


@dataclass
class HeldOut:
    """Labelled rows the model never trained on, with its scores for them: where the rates come from."""

    proba: np.ndarray
    y: np.ndarray
    """Label indices, in the model's label order."""
    recalibrate: bool = True
    """Recalibrate the scores on these rows before every method but CC (`recalibrated`; prevalence.recalibrate)."""

    @cached_property
    def recalibration(self) -> dict:
        """The bias-corrected temperature scaling fitted on these rows, once per set of rows (every method and
        every shifted sample of a fold reuses it)."""
        return fit_calibration(self.proba, self.y, "temperature_bias")


def recalibrated(heldout: HeldOut, proba: np.ndarray) -> tuple[HeldOut, np.ndarray]:
    """The held-out and the measured scores after bias-corrected temperature scaling (softmax(log p / T + b), T
    and b fitted by NLL on the held-out rows; Alexandari et al. 2020): the scores' mean on the held-out rows then
    matches their class shares, which PCC and EMQ assume. Unchanged where `heldout.recalibrate` is off."""
    if not heldout.recalibrate:
        return heldout, proba
    calibration = heldout.recalibration
    return replace(heldout, proba=apply_calibration(heldout.proba, calibration)), apply_calibration(proba, calibration)


def shares(method: str, heldout: HeldOut, proba: np.ndarray) -> np.ndarray:
    """The estimated class shares of the rows scored `proba`, by `method` (one of METHODS); CC counts the
    model's own labels, every other method reads recalibrated scores."""
    from quapy.method.aggregative import ACC, CC, EMQ, PACC, PCC

    if method != "cc":
        heldout, proba = recalibrated(heldout, proba)
    quantifier = {"cc": CC, "pcc": PCC, "acc": ACC, "pacc": PACC, "emq": EMQ}[method]
    scores = _Scores(proba.shape[1]).fit(None)
    # The adjusted methods read the rates off the held-out rows (val_split); CC needs none, and EMQ takes its
    # starting prior from the rows it is fitted on, the held-out ones.
    if method in ("cc", "emq"):
        q = quantifier(scores, fit_classifier=False)
    else:
        q = quantifier(scores, fit_classifier=False, val_split=(heldout.proba, heldout.y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QuaPy's notes on the options chosen above, once per bootstrap draw
        q.fit(heldout.proba, heldout.y)
        return np.asarray(q.predict(proba), dtype=float)


def estimate(
    heldout: HeldOut, proba: np.ndarray, labels: list[str], methods: tuple[str, ...], n_boot: int, seed: int
) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {label: {estimate, low, high}}}: each method's shares of `proba`'s rows, with a 95 % percentile
    bootstrap interval over the held-out rows and the measured rows together."""
    missing = [labels[j] for j in range(len(labels)) if not (heldout.y == j).any()]
    if missing:
        raise DataError(f"the held-out rows have no {missing}: the misclassification rates need every label")
    rng = np.random.default_rng(seed)
    measured = proba if len(proba) <= BOOTSTRAP_ROWS else proba[rng.choice(len(proba), BOOTSTRAP_ROWS, replace=False)]
    draw_seeds = rng.integers(0, 2**32, n_boot)  # a draw is remade from its seed, not kept: 50k indices each

    def draw(draw_seed: int) -> tuple[HeldOut, np.ndarray]:
        r = np.random.default_rng(draw_seed)
        h, m = r.integers(0, len(heldout.y), len(heldout.y)), r.integers(0, len(measured), len(measured))
        return replace(heldout, proba=heldout.proba[h], y=heldout.y[h]), measured[m]

    out = {}
    for method in methods:  # every method on the same draws
        point = shares(method, heldout, proba)
        boot = np.array([shares(method, *draw(s)) for s in draw_seeds])
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        out[method] = {
            label: {"estimate": float(point[j]), "low": float(low[j]), "high": float(high[j])}
            for j, label in enumerate(labels)
        }
    return out


def choose_method(heldout: HeldOut, folds: int, samples: int, seed: int) -> dict:
    """The method to trust, chosen on the held-out rows alone: each fold's rows are resampled to PROTOCOL_ROWS
    rows at class shares spread uniformly over the simplex (QuaPy's uniform-prevalence protocol, UPP), and every
    method estimates those samples with the rates of the other folds. Returns {"method", "errors": {method: mean
    absolute share error}, "folds", "samples"}: the method with the smallest error (the first of METHODS on a
    tie)."""
    from quapy.data import LabelledCollection
    from quapy.protocol import UPP
    from sklearn.model_selection import StratifiedKFold

    k = heldout.proba.shape[1]
    smallest = int(np.bincount(heldout.y, minlength=k).min())
    if smallest < 2:
        raise DataError(f"the held-out rows have {smallest} row(s) of some label: choosing a method needs two of each")
    n_folds = min(folds, smallest)  # every fold holds every label, and so do the rates fitted on the others
    errors = {m: [] for m in METHODS}
    split = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(heldout.proba, heldout.y)
    for fold, (fit_rows, eval_rows) in enumerate(split):
        rates = replace(heldout, proba=heldout.proba[fit_rows], y=heldout.y[fit_rows])
        rows = LabelledCollection(heldout.proba[eval_rows], heldout.y[eval_rows], classes=list(range(k)))
        protocol = UPP(rows, sample_size=PROTOCOL_ROWS, repeats=samples, random_state=seed + fold)
        for sample, true in protocol():
            for m in METHODS:
                errors[m].append(float(np.abs(shares(m, rates, sample) - true).mean()))
    mae = {m: float(np.mean(e)) for m, e in errors.items()}
    return {"method": min(METHODS, key=lambda m: mae[m]), "errors": mae, "folds": n_folds, "samples": samples}


def adjusted_posteriors(
    heldout: HeldOut, proba: np.ndarray, prior: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(prior, posteriors): each row's scores re-weighted from the held-out rows' prior, the one they are
    calibrated to, to `prior` (Saerens et al. 2002: p'(y|x) is proportional to p(y|x) prior(y) / prior_heldout(y));
    without `prior`, to EMQ's own estimate of the rows' shares, found by iterating that re-weighting. The scores
    are recalibrated first (`recalibrated`): the re-weighting assumes them calibrated to the held-out prior."""
    from quapy.method.aggregative import EMQ

    heldout, proba = recalibrated(heldout, np.asarray(proba, dtype=float))
    train_prior = np.bincount(heldout.y, minlength=proba.shape[1]) / len(heldout.y)
    proba = np.asarray(proba, dtype=float)
    if prior is None:
        prior, posteriors = EMQ.EM(train_prior, proba)
        return np.asarray(prior, dtype=float), np.asarray(posteriors, dtype=float)
    weighted = proba * (np.asarray(prior, dtype=float) / train_prior)
    return np.asarray(prior, dtype=float), weighted / weighted.sum(1, keepdims=True)


def scored_against_truth(estimates: dict, truth: dict[str, float]) -> dict:
    """Per method and label, next to `estimate`'s {estimate, low, high}: the true share, the error, the
    interval's width and whether it covers the truth; and each method's largest error over the labels."""
    out = {}
    for method, per_label in estimates.items():
        rows = {}
        for label, e in per_label.items():
            rows[label] = e | {
                "true": truth[label],
                "error": abs(e["estimate"] - truth[label]),
                "width": e["high"] - e["low"],
                "covers": e["low"] <= truth[label] <= e["high"],
            }
        out[method] = {"classes": rows, "max_error": max(r["error"] for r in rows.values())}
    return out


def group_shares(
    heldout: HeldOut,
    proba: np.ndarray,
    groups: list[str],
    labels: list[str],
    method: str,
    n_boot: int,
    seed: int,
    min_rows: int,
) -> dict[str, dict]:
    """Per group (e.g. an article id or a month): its rows, its classify-and-count counts, and `method`'s
    shares with intervals; a group of fewer than `min_rows` rows gets its counts and a stated refusal."""
    keys = np.asarray(groups, dtype=object)
    out = {}
    for name in sorted(set(groups), key=str):
        rows = proba[keys == name]
        counts = np.bincount(rows.argmax(1), minlength=len(labels))
        entry = {"rows": len(rows), "counts": dict(zip(labels, counts.tolist()))}
        if len(rows) < min_rows:
            entry["refused"] = f"{len(rows)} rows, fewer than {min_rows}: too few for a share worth reading"
        else:
            entry["shares"] = estimate(heldout, rows, labels, (method,), n_boot, seed)[method]
        out[str(name)] = entry
    return out


def split_prevalence(
    heldout: HeldOut,
    test: HeldOut,
    pool: np.ndarray,
    labels: list[str],
    minority: str,
    cfg: PrevalenceConfig,
    seed: int,
) -> dict:
    """The prevalence stage's report: the method chosen on the held-out rows (or named in `cfg.method`); on the
    test split, whose truth is known, every method's shares with intervals against the true ones; on the pool,
    the answer; and whether the EMQ posteriors' labels beat the plain argmax on test (`--adjust-prior`)."""
    from commentclf.calibration import calibration_report
    from commentclf.metrics import classification_report

    choice = choose_method(heldout, cfg.folds, cfg.protocol_samples, seed) if cfg.method == "auto" else None
    method = choice["method"] if choice else cfg.method
    truth = dict(zip(labels, (np.bincount(test.y, minlength=len(labels)) / len(test.y)).tolist()))
    on_test = scored_against_truth(estimate(heldout, test.proba, labels, METHODS, cfg.bootstrap, seed), truth)
    on_pool = estimate(heldout, pool, labels, METHODS, cfg.bootstrap, seed)
    _, emq_posteriors = adjusted_posteriors(heldout, test.proba)
    answer = np.array([on_test[method]["classes"][label]["estimate"] for label in labels])
    _, reweighted = adjusted_posteriors(heldout, test.proba, answer)
    gold = [labels[j] for j in test.y]

    def quality(proba: np.ndarray) -> dict:
        r = classification_report(gold, [labels[j] for j in proba.argmax(1)], labels, minority)
        calibration = calibration_report(proba, test.y)
        return {k: r[k] for k in ("accuracy", "macro_f1", "minority_f1")} | {k: calibration[k] for k in ("ece", "nll")}

    keep = ("true", "estimate", "low", "high")
    return {
        "default_method": method,
        **({"choice": choice} if choice else {}),
        "heldout_rows": len(heldout.y),
        "test_rows": len(test.y),
        "bootstrap": cfg.bootstrap,
        # the default method on the test split, and every method's estimate there (the checkable summary)
        "classes": {label: {k: c[k] for k in keep} for label, c in on_test[method]["classes"].items()},
        "methods": {m: {label: c["estimate"] for label, c in r["classes"].items()} for m, r in on_test.items()},
        "max_error": {m: r["max_error"] for m, r in on_test.items()},
        "test": on_test,
        "pool": {
            "rows": len(pool),
            "classes": on_pool[method],
            "methods": {m: {label: e["estimate"] for label, e in s.items()} for m, s in on_pool.items()},
        },
        # labels and calibration on test of the scores as shipped, and re-weighted to the test split's estimated
        # shares: EMQ's, and the default method's (what `commentclf prevalence --adjust-prior` writes)
        "adjust_prior": {
            "argmax": quality(test.proba),
            "emq_posteriors": quality(emq_posteriors),
            "reweighted": quality(reweighted) | {"prior_from": method},
        },
    }


def split_markdown(report: dict) -> str:
    """The prevalence stage's report as two tables: the test split against its truth, and the pool."""
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    methods, m = list(report["methods"]), report["default_method"]
    lines = [
        f"# Class shares: test split ({report['test_rows']} rows, truth known), pool ({report['pool']['rows']} rows)",
        "",
        f"Default method: {m}"
        + (" (chosen on shifted samples of the calib rows)" if "choice" in report else "")
        + f"; rates and intervals from {report['heldout_rows']} calib rows, 95 % bootstrap ({report['bootstrap']} "
        "draws). Shares in %.",
        "",
        "| class | true | " + f"{m} [95 % CI] | " + " | ".join(methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for label, c in report["classes"].items():
        others = " | ".join(pct(report["methods"][x][label]) for x in methods)
        lines.append(
            f"| {label} | {pct(c['true'])} | {pct(c['estimate'])} [{pct(c['low'])}, {pct(c['high'])}] | {others} |"
        )
    lines.append(
        "| largest error | | "
        + pct(report["max_error"][m])
        + " | "
        + " | ".join(pct(report["max_error"][x]) for x in methods)
        + " |"
    )
    lines += ["", f"Pool ({m}):", "", "| class | share [95 % CI] | classify-and-count |", "|---|---|---|"]
    for label, c in report["pool"]["classes"].items():
        cc = report["pool"]["methods"]["cc"][label]
        lines.append(f"| {label} | {pct(c['estimate'])} [{pct(c['low'])}, {pct(c['high'])}] | {pct(cc)} |")
    return "\n".join(lines) + "\n"
