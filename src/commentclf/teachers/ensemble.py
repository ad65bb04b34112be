"""Combine the teachers' probabilities into one distribution per comment (the pseudo-labels).

Each teacher's probabilities are calibrated on its out-of-fold seed rows (`fit_calibration`), then pooled
linearly, p = sum_t w_t p_t, with weights on the simplex chosen by the out-of-fold log-loss
(`fit_pool_weights`): a useless teacher gets weight 0, and there is one weight per teacher, so a few
hundred rows are enough to fit them. A teacher only out-of-fold on some rows (SetFit and the LLM are
trained on the train split, so only dev is out-of-fold for them) counts on those rows only: each row's
weights are renormalised over the teachers available on it. A per-label bias on the pooled log-probability
(prior correction, fitted the same way) then puts the rare label back where the teachers' priors pulled
it away.

`Ensemble` is the fitted result: `llm_label` fits and saves it as models/ensemble.json, and the benchmark
loads it rather than re-deriving it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from commentclf.calibration import _nll, apply_calibration, fit_calibration
from commentclf.config import LabelConfig
from commentclf.metrics import classification_report


@dataclass(frozen=True)
class Ensemble:
    """Teacher probabilities -> one distribution over `labels`: calibrate each, pool, correct the prior."""

    labels: list[str]
    teachers: list[str]
    weights: dict[str, float]
    """Pool weight of each teacher (sum 1), fitted by out-of-fold log-loss."""
    calibration: dict[str, dict]
    """teacher -> {"temperature": T, "bias": [b_k]} (see `fit_calibration`)."""
    prior_bias: list[float]
    """Added to the pooled log-probabilities (all 0 without label.prior_correction)."""

    @classmethod
    def fit(cls, oof: dict[str, np.ndarray], gold_index: np.ndarray, labels: list[str], cfg: LabelConfig) -> Ensemble:
        """Fit on out-of-fold probabilities: `oof[teacher]` is (n, k) with NaN rows where the teacher is not
        out-of-fold (it was trained on that row)."""
        teachers = list(oof)
        calibration = {}
        for t in teachers:
            rows = _available(oof[t])
            calibration[t] = fit_calibration(oof[t][rows], gold_index[rows], cfg.calibrate)
        calibrated = {t: _calibrate_rows(oof[t], calibration[t]) for t in teachers}
        weights = fit_pool_weights(calibrated, gold_index)
        pooled = pool(calibrated, weights)
        bias = [0.0] * len(labels)
        if cfg.prior_correction == "nll":
            bias = _bias_only(pooled, gold_index)
        elif cfg.prior_correction == "macro_f1":
            bias = _bias_for_macro_f1(pooled, gold_index)
        return cls(list(labels), teachers, weights, calibration, bias)

    def predict_proba(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        """The ensemble's distribution from each teacher's raw probabilities (same rows)."""
        calibrated = {t: apply_calibration(probas[t], self.calibration[t]) for t in self.teachers}
        return apply_calibration(pool(calibrated, self.weights), {"temperature": 1.0, "bias": self.prior_bias})

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Ensemble:
        return cls(**json.loads(Path(path).read_text()))


def _available(p: np.ndarray) -> np.ndarray:
    return np.isfinite(p).all(1)


def _calibrate_rows(p: np.ndarray, calibration: dict) -> np.ndarray:
    out = np.full_like(p, np.nan)
    rows = _available(p)
    out[rows] = apply_calibration(p[rows], calibration)
    return out


def pool(probas: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted linear pool; on each row the weights of the teachers available there (no NaN) are
    renormalised. A row with no weighted teacher available gets the unweighted mean of those it has."""
    stacked = np.stack([probas[t] for t in weights])  # (teachers, n, k)
    available = np.isfinite(stacked).all(2)  # (teachers, n)
    w = np.array(list(weights.values()))[:, None] * available
    none = w.sum(0) == 0
    w[:, none] = available[:, none]
    w = w / np.maximum(w.sum(0, keepdims=True), 1e-12)
    return np.einsum("tn,tnk->nk", w, np.nan_to_num(stacked))


def fit_pool_weights(probas: dict[str, np.ndarray], gold_index: np.ndarray) -> dict[str, float]:
    """Simplex weights minimising the log-loss of the pooled out-of-fold probabilities (SLSQP; exact zeros
    allowed). Ties and flat directions stay at the equal-weight start."""
    from scipy.optimize import minimize

    teachers = list(probas)
    if len(teachers) == 1:
        return {teachers[0]: 1.0}

    def loss(w):
        p = pool(probas, dict(zip(teachers, np.maximum(w, 0.0) + 1e-12)))
        return -np.mean(np.log(np.clip(p[np.arange(len(p)), gold_index], 1e-9, 1.0)))

    start = np.full(len(teachers), 1.0 / len(teachers))
    res = minimize(
        loss,
        start,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * len(teachers),
        constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
    )
    w = np.clip(res.x, 0.0, 1.0)
    w[w < 1e-4] = 0.0
    w = w / w.sum()
    return {t: round(float(x), 6) for t, x in zip(teachers, w)}


def _bias_for_macro_f1(p: np.ndarray, gold_index: np.ndarray, sweeps: int = 3) -> list[float]:
    """Per-label bias b (b_0 = 0) on log p with the highest macro-F1 of the argmax: coordinate ascent over a
    grid, one label at a time (ties keep the smaller bias). A threshold per label, in effect, fitted on
    out-of-fold rows so the rare label is not traded away for the frequent ones."""
    from sklearn.metrics import f1_score

    logp = np.log(np.clip(p, 1e-12, 1.0))
    k = p.shape[1]
    grid = np.round(np.linspace(-2.0, 2.0, 41), 3)

    def score(b):
        return f1_score(gold_index, (logp + b).argmax(1), labels=list(range(k)), average="macro", zero_division=0)

    b = np.zeros(k)
    for _ in range(sweeps):
        before = b.copy()
        for j in range(1, k):
            trials = [(score(np.where(np.arange(k) == j, v, b)), -abs(v), v) for v in grid]
            b[j] = max(trials)[2]
        if np.array_equal(before, b):
            break
    return [float(x) for x in b]


def _bias_only(p: np.ndarray, gold_index: np.ndarray) -> list[float]:
    """Per-label bias b (b_0 = 0) on log p minimising the NLL: a prior correction that keeps each row's
    ranking of labels except where the prior tips it."""
    from scipy.optimize import minimize

    logp = np.log(np.clip(p, 1e-12, 1.0))
    k = p.shape[1]
    x = minimize(
        lambda b: _nll(logp + np.concatenate([[0.0], b]), gold_index),
        np.zeros(k - 1),
        method="L-BFGS-B",
        bounds=[(-5, 5)] * (k - 1),
    ).x
    return [0.0] + [float(b) for b in x]


def pseudo_label_accuracy(pseudo, truth, labels: list[str], minority: str, teachers: list[str]) -> dict:
    """Pseudo-labels against a labelled file (`label.gold`), rows matched on their text.

    `pseudo` has the columns label (the ensemble's), <teacher>_label for each teacher, and kept; `truth` has
    text and label. Reported on every matched pool row (before any floor): the classification report
    (accuracy, per-class precision/recall/F1) of the ensemble and of each teacher alone; and the kept rows'
    accuracy (what the confidence floor buys).
    """
    import polars as pl

    matched = pseudo.join(truth.select("text", pl.col("label").alias("gold")), on="text", maintain_order="left")
    hits = matched.filter(pl.col("kept"))
    gold = matched["gold"].to_list()
    columns = {"ensemble": "label", **{t: f"{t}_label" for t in teachers}}
    return {
        "rows_matched": len(matched),
        "rows_kept_matched": len(hits),
        "kept_accuracy": float((hits["label"] == hits["gold"]).mean()) if len(hits) else None,
        "all_rows": {
            name: classification_report(gold, matched[column].to_list(), labels, minority) if len(matched) else None
            for name, column in columns.items()
        },
    }
