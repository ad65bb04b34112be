"""What the next batch of labels is worth: the fast proxy's learning curve, extrapolated.

The proxy is frozen e5 embeddings + a class-balanced logistic regression (as `seed_only_logreg`): cheap enough
to refit a few dozen times, and what the simulated loop retrains every round. Its learning curve comes from the
labelled rows alone, so it needs no test set: k-fold cross-fitting where each fold's model is trained on
nested, stratified prefixes of the other folds' rows (several sizes, several shuffles), so that every size has
an out-of-fold prediction for every labelled row. An inverse power law f(n) = a - b * n^(-c) (Figueroa et al.
2012, "Predicting sample size required for classification performance") fitted to those points extrapolates
from the labels there are, N, to N + k; the forecast is the gain f(N + k) - f(N).

The interval is a prediction interval for the gain one will measure, not only for the curve. Each bootstrap
replicate resamples which labelled rows are scored and draws one shuffle (its prefixes are nested, as labels
accumulate over rounds), refits the curve, and adds the luck of a batch: how far one of that shuffle's
measured steps between two sizes strayed from the curve's step, scaled to the forecast's label count as a
random walk (by the square root of the ratio of label counts). It assumes the next labels resemble the present
ones; the simulated loop (scripts/annotation_sim.py) measures how often the interval holds the gain a
strategy's batch really brings (`forecast_hit_rate`) and how wide it is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from commentclf.config import ForecastConfig
from commentclf.errors import DataError

METRICS = ("macro_f1", "minority_f1")


def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """The learning curve's shape: the score approaches `a` as the labels `n` grow, at rate `c`."""
    return a - b * np.power(n, -c)


def fit_power_law(sizes: np.ndarray, scores: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares (a, b, c), b >= 0 so more labels never forecast a loss; None when the fit fails."""
    p0 = (min(1.0, float(scores.max()) + 0.05), 1.0, 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(
                power_law, sizes, scores, p0=p0, bounds=([0.0, 0.0, 0.05], [1.0, np.inf, 2.0]), maxfev=5000
            )
    except (RuntimeError, ValueError):
        return None
    return tuple(float(p) for p in params)


def f1_per_label(y: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Each label's F1 from a confusion matrix (0 where a label is neither given nor predicted); the bootstrap
    calls it thousands of times, where scikit-learn's f1_score would dominate the run time."""
    cm = np.bincount(y * n_labels + pred, minlength=n_labels * n_labels).reshape(n_labels, n_labels)
    tp = np.diag(cm).astype(float)
    denom = 2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A shuffle whose every prefix keeps the label mix: rows sorted by their rank within their label,
    spread over [0, 1)."""
    position = np.empty(len(y))
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        position[rng.permutation(rows)] = (np.arange(len(rows)) + rng.random()) / len(rows)
    return np.argsort(position, kind="stable")


@dataclass
class LearningCurve:
    sizes: np.ndarray
    """(s,) training rows behind each point."""
    predictions: np.ndarray
    """(s, shuffles, rows) out-of-fold label predicted for every labelled row at each size and shuffle."""


def learning_curve(x: np.ndarray, y: np.ndarray, cfg: ForecastConfig, seed: int) -> LearningCurve:
    """Out-of-fold predictions of the proxy at `cfg.fractions` of each fold's training rows."""
    n_labels = int(y.max()) + 1
    counts = np.bincount(y, minlength=n_labels)
    if counts.min() < cfg.folds:
        raise DataError(
            f"suggest.forecast: every label needs at least {cfg.folds} labelled rows (folds); counts {counts.tolist()}"
        )
    fractions = np.asarray(cfg.fractions)
    predictions = np.zeros((len(fractions), cfg.shuffles, len(y)), dtype=int)
    train_sizes = np.zeros(len(fractions))
    folds = StratifiedKFold(cfg.folds, shuffle=True, random_state=seed).split(x, y)
    for fold, (train, held_out) in enumerate(folds):
        for shuffle in range(cfg.shuffles):
            rng = np.random.default_rng([seed, fold, shuffle])
            order = train[stratified_order(y[train], rng)]
            for i, fraction in enumerate(fractions):
                rows = order[: max(n_labels * 2, int(round(fraction * len(order))))]
                model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed)
                predictions[i, shuffle, held_out] = model.fit(x[rows], y[rows]).predict(x[held_out])
                train_sizes[i] += len(rows) / (cfg.folds * cfg.shuffles)  # the mean over folds and shuffles
    return LearningCurve(train_sizes, predictions)


@dataclass
class Forecast:
    labelled: int
    """Labelled rows the curve was fitted on (N)."""
    gains: dict[str, dict[int, tuple[float, float, float]]]
    """metric -> labels added -> (expected gain, interval low, interval high), in F1 units."""
    level: float
    """The interval's coverage (e.g. 0.9)."""
    failed_fits: int
    """Bootstrap replicates whose curve fit did not converge (left out of the interval)."""

    def lines(self, minority: str) -> list[str]:
        """What `suggest` prints: "100 more labels: macro-F1 +x [lo, hi] points expected", one line per batch."""
        names = {"macro_f1": "macro-F1", "minority_f1": f"{minority} F1"}
        out = []
        for added in next(iter(self.gains.values())):
            parts = []
            for metric, by_added in self.gains.items():
                mid, lo, hi = (100 * v for v in by_added[added])
                parts.append(f"{names[metric]} {mid:+.1f} [{lo:+.1f}, {hi:+.1f}]")
            out.append(f"{added} more labels: " + ", ".join(parts) + f" points expected ({self.level:.0%} interval)")
        return out

    def to_json(self) -> dict:
        return {
            "labelled": self.labelled,
            "level": self.level,
            "failed_fits": self.failed_fits,
            **{
                metric: {str(k): {"gain": g[0], "low": g[1], "high": g[2]} for k, g in by_added.items()}
                for metric, by_added in self.gains.items()
            },
        }


def forecast(x: np.ndarray, y: np.ndarray, minority: int, cfg: ForecastConfig, seed: int) -> Forecast:
    """The expected gain of the proxy's macro-F1 and `minority` F1 from `cfg.added` more labels, with a
    prediction interval at `cfg.level`. `x`: (N, dim) embeddings of the labelled rows, `y`: their label indices."""
    y = np.asarray(y)
    n_labels = int(y.max()) + 1
    curve = learning_curve(x, y, cfg, seed)
    rng = np.random.default_rng(seed)
    total = len(y)
    targets = total + np.array([0, *cfg.added], dtype=float)
    steps = np.diff(curve.sizes)

    def gains(rows: np.ndarray, shuffles: list[int], luck: bool) -> np.ndarray | None:
        # F1 of each label at each size, averaged over `shuffles`
        f1 = np.array(
            [
                np.mean([f1_per_label(y[rows], curve.predictions[i, s, rows], n_labels) for s in shuffles], 0)
                for i in range(len(curve.sizes))
            ]
        )
        out = []
        for scores in (f1.mean(1), f1[:, minority]):
            params = fit_power_law(curve.sizes, scores)
            if params is None:
                return None
            at = power_law(targets, *params)
            gain = at[1:] - at[0]
            if luck:  # a measured gain is one batch's step, not the curve's: add a step's miss, scaled
                miss = np.diff(scores) - np.diff(power_law(curve.sizes, *params))
                i = rng.integers(0, len(miss))
                gain = gain + miss[i] * np.sqrt(np.asarray(cfg.added) / steps[i])
            out.append(gain)
        return np.array(out)  # (metric, added)

    point = gains(np.arange(total), list(range(cfg.shuffles)), luck=False)
    replicates, failed = [], 0
    for _ in range(cfg.bootstrap):
        g = gains(rng.integers(0, total, total), [int(rng.integers(0, cfg.shuffles))], luck=True)
        if g is None:
            failed += 1
        else:
            replicates.append(g)
    if point is None or not replicates:
        raise DataError("suggest.forecast: the learning curve could not be fitted (too few labelled rows?)")
    replicates = np.array(replicates)
    tail = (1 - cfg.level) / 2
    lo, hi = np.quantile(replicates, [tail, 1 - tail], axis=0)
    result = {
        metric: {int(k): (float(point[m, j]), float(lo[m, j]), float(hi[m, j])) for j, k in enumerate(cfg.added)}
        for m, metric in enumerate(METRICS)
    }
    return Forecast(total, result, cfg.level, failed)


def forecast_report(
    x: np.ndarray, y: np.ndarray, minority: int, minority_name: str, cfg: ForecastConfig, seed: int
) -> tuple[dict, list[str]]:
    """`suggest`'s forecast block and the lines it prints. Too few labelled rows for a curve do not stop the
    stage (the tasks still go out): the block then says why there is no forecast."""
    try:
        made = forecast(x, y, minority, cfg, seed)
    except DataError as e:
        return {"skipped": str(e)}, [f"no forecast: {e}"]
    return made.to_json(), made.lines(minority_name)
