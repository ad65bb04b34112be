"""Calibrated probabilities, and how to tell: temperature scaling (and its bias variant) fitted by
negative log-likelihood on held-out rows, and the measures of calibration the benchmark reports (expected
calibration error, Brier score, NLL, the reliability curve). Shared by the teachers' ensemble, which
calibrates each teacher, and the exported student, which ships its temperature in its model folder."""

from __future__ import annotations

import numpy as np


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


def expected_calibration_error(p: np.ndarray, gold_index: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence (the top probability) and accuracy, averaged over `bins` equal-width
    confidence bins weighted by their rows (Guo et al. 2017)."""
    conf, hit = p.max(1), (p.argmax(1) == gold_index)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(hit[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
            for b in range(bins)
            if (which == b).any()
        )
    )


def reliability_curve(p: np.ndarray, gold_index: np.ndarray, bins: int = 15) -> list[dict]:
    """Per non-empty confidence bin: its mean confidence, its accuracy and its rows (the reliability diagram)."""
    conf, hit = p.max(1), (p.argmax(1) == gold_index)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return [
        {
            "confidence": float(conf[which == b].mean()),
            "accuracy": float(hit[which == b].mean()),
            "rows": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def calibration_report(p: np.ndarray, gold_index: np.ndarray, bins: int = 15) -> dict:
    """ECE, the multi-class Brier score (mean squared distance to the one-hot truth) and the NLL."""
    onehot = np.eye(p.shape[1])[gold_index]
    picked = np.clip(p[np.arange(len(p)), gold_index], 1e-12, 1.0)
    return {
        "ece": expected_calibration_error(p, gold_index, bins),
        "brier": float(((p - onehot) ** 2).sum(1).mean()),
        "nll": float(-np.log(picked).mean()),
    }
