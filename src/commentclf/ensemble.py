"""Combine SetFit and LLM probabilities into pseudo-labels.

* `gate` (the original rule): if SetFit says the no-stance label, keep it; otherwise take the LLM's label.
  Confidence = the probability, under the model that decided, of the label it chose.
* `soft`: p = (1 - w) * p_setfit + w * p_llm; the weight w is chosen on dev (`choose_weight`).
Both return (label indices, confidence); a confidence floor then decides which pseudo-labels are kept.
Each model's probabilities are first calibrated on dev (`fit_calibration`) so they share one scale.

`Ensemble` is the fitted result (calibrations, rule, weight): `llm_label` fits and saves it as
models/ensemble.json, and every later user (the benchmark) loads it rather than re-deriving the rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from commentclf.config import LabelConfig
from commentclf.metrics import classification_report


@dataclass(frozen=True)
class Ensemble:
    """SetFit + LLM probabilities -> one distribution over `labels`: each model calibrated, then the rule."""

    labels: list[str]
    rule: str
    """`gate` or `soft` (label.rule)."""
    weight: float
    """LLM weight of the soft rule, chosen on dev."""
    gate_label: str
    """The no-stance label SetFit is trusted with under the gate rule."""
    calibration: dict[str, dict]
    """"setfit" / "llm" -> {"temperature": T, "bias": [b_k]} (see `fit_calibration`)."""

    @classmethod
    def fit(
        cls,
        p_setfit: np.ndarray,
        p_llm: np.ndarray,
        gold: list[str],
        labels: list[str],
        minority: str,
        cfg: LabelConfig,
    ) -> tuple[Ensemble, dict]:
        """Calibrate both models and choose the soft weight on labelled dev rows; returns the ensemble and the
        dev score of every weight tried."""
        gold_index = np.array([labels.index(g) for g in gold])
        calibration = {
            "setfit": fit_calibration(p_setfit, gold_index, cfg.calibrate),
            "llm": fit_calibration(p_llm, gold_index, cfg.calibrate),
        }
        ps, pl = apply_calibration(p_setfit, calibration["setfit"]), apply_calibration(p_llm, calibration["llm"])
        weight, scores = choose_weight(ps, pl, gold, labels, minority, cfg.soft_weights, cfg.select_on)
        return cls(list(labels), cfg.rule, weight, cfg.gate_label, calibration), scores

    def calibrated(self, p_setfit: np.ndarray, p_llm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return apply_calibration(p_setfit, self.calibration["setfit"]), apply_calibration(
            p_llm, self.calibration["llm"]
        )

    def combine(self, ps: np.ndarray, pl: np.ndarray) -> np.ndarray:
        """The rule applied to already calibrated probabilities."""
        if self.rule == "gate":
            return gate_proba(ps, pl, self.labels.index(self.gate_label))
        return soft_proba(ps, pl, self.weight)

    def predict_proba(self, p_setfit: np.ndarray, p_llm: np.ndarray) -> np.ndarray:
        return self.combine(*self.calibrated(p_setfit, p_llm))

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Ensemble:
        return cls(**json.loads(Path(path).read_text()))


def gate_proba(p_setfit: np.ndarray, p_llm: np.ndarray, gate_index: int) -> np.ndarray:
    """The original's rule as a distribution: SetFit's row where SetFit says `gate_index`, else the LLM's."""
    trust_setfit = p_setfit.argmax(1) == gate_index
    return np.where(trust_setfit[:, None], p_setfit, p_llm)


def soft_proba(p_setfit: np.ndarray, p_llm: np.ndarray, weight: float) -> np.ndarray:
    return (1 - weight) * p_setfit + weight * p_llm


def gate(p_setfit: np.ndarray, p_llm: np.ndarray, gate_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(label index, confidence) under the gate rule."""
    p = gate_proba(p_setfit, p_llm, gate_index)
    return p.argmax(1), p.max(1)


def soft(p_setfit: np.ndarray, p_llm: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(label index, confidence) under the soft rule."""
    p = soft_proba(p_setfit, p_llm, weight)
    return p.argmax(1), p.max(1)


def choose_weight(
    p_setfit, p_llm, gold: list[str], labels: list[str], minority: str, weights: list[float], select_on: str
) -> tuple[float, dict]:
    """The LLM weight with the best dev metric (ties: the smaller weight, i.e. the cheaper model)."""
    scores = {}
    for w in weights:
        pred, _ = soft(p_setfit, p_llm, w)
        scores[w] = classification_report(gold, [labels[i] for i in pred], labels, minority)[select_on]
    best = max(weights, key=lambda w: (scores[w], -w))
    return best, scores


def fit_temperature(p: np.ndarray, gold_index: np.ndarray, grid: np.ndarray | None = None) -> float:
    """Temperature T minimising the dev negative log-likelihood of softmax(log p / T) (temperature scaling).

    SetFit's logistic head on normalised embeddings gives flat probabilities (a correct pro_russia call at
    0.45) while the LLM's can be overconfident; without calibration a confidence floor or a weighted mean
    compares numbers on different scales.
    """
    grid = np.exp(np.linspace(np.log(0.05), np.log(5.0), 200)) if grid is None else grid
    logp = np.log(np.clip(p, 1e-12, 1.0))
    best_t, best_nll = 1.0, np.inf
    for t in grid:
        nll = _nll(logp / t, gold_index)
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def fit_calibration(p: np.ndarray, gold_index: np.ndarray, method: str) -> dict:
    """Calibration of one model's probabilities on dev: {"temperature": T, "bias": [b_k]}.

    `temperature`: temperature scaling only (bias 0). `temperature_bias`: softmax(log p / T + b), T and b
    fitted jointly by dev NLL (the bias variant of vector scaling). The bias is what rescues a small LLM
    whose answers lean to one label ("calibrate before use", Zhao et al. 2021): its log-probabilities
    still rank the comments, only its prior is off. `none`: identity.
    """
    k = p.shape[1]
    if method == "none":
        return {"temperature": 1.0, "bias": [0.0] * k}
    t = fit_temperature(p, gold_index)
    if method == "temperature":
        return {"temperature": t, "bias": [0.0] * k}
    from scipy.optimize import minimize

    logp = np.log(np.clip(p, 1e-12, 1.0))

    def loss(x):  # x = [log 1/T, b_1 .. b_{k-1}]; b_0 = 0 (softmax is shift-invariant)
        return _nll(logp * np.exp(x[0]) + np.concatenate([[0.0], x[1:]]), gold_index)

    x0 = np.concatenate([[np.log(1 / t)], np.zeros(k - 1)])
    x = minimize(loss, x0, method="L-BFGS-B", bounds=[(np.log(0.2), np.log(20.0))] + [(-10, 10)] * (k - 1)).x
    return {"temperature": float(np.exp(-x[0])), "bias": [0.0] + [float(b) for b in x[1:]]}


def apply_calibration(p: np.ndarray, calibration: dict) -> np.ndarray:
    z = np.log(np.clip(p, 1e-12, 1.0)) / calibration["temperature"] + np.asarray(calibration["bias"])
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _nll(z: np.ndarray, gold_index: np.ndarray) -> float:
    z = z - z.max(1, keepdims=True)
    return float(-(z[np.arange(len(z)), gold_index] - np.log(np.exp(z).sum(1))).mean())


def pseudo_label_accuracy(pseudo, truth, labels: list[str], minority: str) -> dict:
    """Pseudo-labels against a labelled file (`label.gold`), rows matched on their text.

    `pseudo` has the columns label, setfit_label, llm_label and kept (llm_label's output); `truth` has text
    and label. Reported: the kept rows' accuracy and report, and every matched row's accuracy before the
    confidence floor for the ensemble and each teacher alone (what the floor buys; which teacher is right).
    """
    import polars as pl

    matched = pseudo.join(truth.select("text", pl.col("label").alias("gold")), on="text", maintain_order="left")
    hits = matched.filter(pl.col("kept"))
    return {
        "rows_matched": len(matched),
        "rows_kept_matched": len(hits),
        "kept_accuracy": float((hits["label"] == hits["gold"]).mean()) if len(hits) else None,
        "kept": classification_report(hits["gold"].to_list(), hits["label"].to_list(), labels, minority)
        if len(hits)
        else None,
        "all_rows_accuracy": {
            column: float((matched[column] == matched["gold"]).mean()) if len(matched) else None
            for column in ("label", "setfit_label", "llm_label")
        },
    }
