"""Prediction sets with a coverage guarantee: class-conditional (Mondrian) split conformal prediction,
computed by crepes.

A set at miscoverage `alpha` holds the true label of a new comment with probability at least 1 - alpha,
for each class separately (Mondrian: the calibration rows are binned by their true label), provided the
new comments are exchangeable with the calibration rows. The nonconformity score is 1 - p(label), the
calibrated probability (crepes' hinge). A set of one class is a label one can trust at that level; two or
more classes is the model saying it cannot tell, which `--abstain` turns into no label.

The calibration rows are the calib split's (onnx_export fits this beside the temperature, on the same rows; no
model trained on them, and neither fit sees a test or pool row); their scores ship inside the model's
calibration.json, so any `alpha` can be asked at predict time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from commentclf.errors import DataError


@dataclass
class ConformalSets:
    """The calibration rows' nonconformity scores and labels: all a Mondrian conformal classifier keeps."""

    scores: np.ndarray
    """1 - p(true label) of each calibration row (its calibrated probability)."""
    labels: np.ndarray
    """Each calibration row's true label index."""
    n_classes: int
    _fitted: object = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(cls, proba: np.ndarray, y: np.ndarray) -> ConformalSets:
        """Calibrate on labelled rows the model never trained on (`proba`: their calibrated scores)."""
        proba, y = np.asarray(proba, dtype=float), np.asarray(y, dtype=int)
        empty = [j for j in range(proba.shape[1]) if not (y == j).any()]
        if empty:
            raise DataError(f"conformal calibration: no calibration row of class index {empty}: each class needs one")
        return cls(1.0 - proba[np.arange(len(y)), y], y, proba.shape[1])

    def to_dict(self) -> dict:
        return {"scores": self.scores.tolist(), "labels": self.labels.tolist()}

    @classmethod
    def from_dict(cls, d: dict, n_classes: int) -> ConformalSets:
        return cls(np.asarray(d["scores"], dtype=float), np.asarray(d["labels"], dtype=int), n_classes)

    def p_values(self, proba: np.ndarray) -> np.ndarray:
        """(rows, classes): each class's conformal p-value, against that class's calibration rows only.
        Not smoothed: the same input gives the same sets, and the coverage is at least 1 - alpha."""
        from crepes import ConformalClassifier

        proba = np.asarray(proba, dtype=float)
        if not len(proba):
            return np.zeros((0, self.n_classes))
        if self._fitted is None:  # once per model, not per call: serve asks for every request
            self._fitted = ConformalClassifier().fit(self.scores, bins=self.labels)
        cc = self._fitted
        columns = []
        for c in range(self.n_classes):
            # every row in bin c: column c is then its class-conditional p-value for c, as crepes'
            # WrapClassifier(class_cond=True) computes it
            p = cc.predict_p(1.0 - proba, bins=np.full(len(proba), c), smoothing=False)
            columns.append(p[:, c])
        return np.stack(columns, axis=1)

    def sets(self, proba: np.ndarray, alpha: float) -> np.ndarray:
        """(rows, classes) booleans: class c is in a row's set when its p-value is above `alpha`."""
        if not 0 < alpha < 1:
            raise DataError(f"alpha must be between 0 and 1 (got {alpha})")
        return self.p_values(proba) > alpha


def set_report(sets: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    """How the sets did on labelled rows: coverage per class (the share of its rows whose set holds it), the
    share of rows given a single label, the accuracy of those labels, and the mean set size."""
    sets, y = np.asarray(sets, dtype=bool), np.asarray(y, dtype=int)
    covered = sets[np.arange(len(y)), y]
    single = sets.sum(1) == 1
    per_class = {label: covered[y == j] for j, label in enumerate(labels)}
    return {
        "coverage": {label: float(c.mean()) if len(c) else None for label, c in per_class.items()},
        "coverage_overall": float(covered.mean()),
        "singleton_share": float(single.mean()),
        "singleton_accuracy": float(covered[single].mean()) if single.any() else None,
        "mean_set_size": float(sets.sum(1).mean()),
        "empty_share": float((sets.sum(1) == 0).mean()),
        "rows": len(y),
    }


def set_names(sets: np.ndarray, labels: list[str]) -> list[str]:
    """Each row's set as one string, its labels in the model's order joined by '|' ('' for an empty set)."""
    return ["|".join(label for label, inside in zip(labels, row) if inside) for row in np.asarray(sets, dtype=bool)]


def set_labels(proba: np.ndarray, sets: np.ndarray, labels: list[str], abstain: bool) -> list[str | None]:
    """Each row's label: the most probable class, or with `abstain` the set's one class and None where the set
    holds none or several (the model cannot tell at that level)."""
    sets = np.asarray(sets, dtype=bool)
    if not abstain:
        return [labels[int(j)] for j in np.asarray(proba).argmax(1)]
    return [labels[int(row.argmax())] if row.sum() == 1 else None for row in sets]
