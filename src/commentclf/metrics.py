"""Quality metrics of a classifier on labelled rows (scikit-learn), the same report everywhere."""

from __future__ import annotations


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
