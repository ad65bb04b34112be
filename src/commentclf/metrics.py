"""Metric files: small JSON documents that DVC tracks (`metrics:` in dvc.yaml) and `dvc metrics diff` compares."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    # NaN/inf are not JSON; write null so `dvc metrics diff` shows the hole instead of failing to parse.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


def classification_report(y_true, y_pred, labels: list[str], minority: str) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1 (scikit-learn), keyed by label name."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "minority_f1": float(f[labels.index(minority)]),
        "f1": dict(zip(labels, map(float, f))),
        "precision": dict(zip(labels, map(float, p))),
        "recall": dict(zip(labels, map(float, r))),
        "support": dict(zip(labels, map(int, support))),
    }
