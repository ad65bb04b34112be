"""How much of a file is each class (quantification): `commentclf prevalence --input FILE [--by COLUMN]`.

Counting the student's labels (classify-and-count, CC) is biased whenever its errors differ across classes
or the file's class mix differs from the seed's, and the seed's always differs: an analyst oversamples the
rare class before labelling. The adjusted methods correct for it with the model's misclassification rates,
measured on labelled rows it never trained on (the held-out rows: by default the dev split). The estimators
are QuaPy's (CC, PCC, ACC, PACC, EMQ/SLD), fed the student's scores through a pass-through classifier, so
the file is scored once.

Each share comes with a 95 % percentile bootstrap interval that resamples both the held-out rows (the rates'
uncertainty, which dominates: a few dozen rows) and the measured rows. The file is scored with
`streaming.predict_file` into resumable parts, so a killed run goes on where it stopped, and memory holds
the scores (labels × 8 bytes a row), never the texts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, ClassifierMixin

from commentclf.data import read_table, scan_table
from commentclf.errors import DataError
from commentclf.inference.streaming import predict_file, read_output

METHODS = ("cc", "pcc", "acc", "pacc", "emq")
BOOTSTRAP_ROWS = 50_000
"""Measured rows resampled per bootstrap draw at most: past it the file's own sampling error (under a quarter
of a point) is nothing beside the held-out rows', and EMQ's iterations stay cheap on millions of rows."""


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


def shares(method: str, heldout: HeldOut, proba: np.ndarray) -> np.ndarray:
    """The estimated class shares of the rows scored `proba`, by `method` (one of METHODS)."""
    from quapy.method.aggregative import ACC, CC, EMQ, PACC, PCC

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
    draws = [
        (rng.integers(0, len(heldout.y), len(heldout.y)), rng.integers(0, len(measured), len(measured)))
        for _ in range(n_boot)
    ]
    out = {}
    for method in methods:
        point = shares(method, heldout, proba)
        boot = np.array([shares(method, HeldOut(heldout.proba[h], heldout.y[h]), measured[m]) for h, m in draws])
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        out[method] = {
            label: {"estimate": float(point[j]), "low": float(low[j]), "high": float(high[j])}
            for j, label in enumerate(labels)
        }
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


@dataclass
class PrevalenceOptions:
    """How `prevalence_of_file` estimates (the CLI's options)."""

    method: str = "pacc"
    """The method whose shares are the answer (every method is reported beside it overall)."""
    by: str | None = None
    """A column of the input to report per group of (an article id, a month)."""
    bootstrap: int = 200
    min_group_rows: int = 20
    seed: int = 0
    text_column: str = "text"
    id_column: str = "id"
    part_rows: int = 10_000


def read_heldout(clf, path: Path) -> HeldOut:
    """The held-out file's rows (columns `text` and `label`, as data/split/dev.parquet has) scored by `clf`."""
    df = read_table(path)
    for column in ("text", "label"):
        if column not in df.columns:
            raise DataError(f"{path}: missing column {column!r} (columns found: {df.columns})")
    unknown = sorted(set(df["label"].to_list()) - set(clf.labels))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not the model's ({clf.labels})")
    return HeldOut(clf.predict_proba(df["text"].to_list()), np.array([clf.labels.index(y) for y in df["label"]]))


def prevalence_of_file(
    clf, input: Path, heldout: HeldOut, out_dir: Path, opts: PrevalenceOptions, on_part: Callable | None = None
) -> dict:
    """Score `input` into `out_dir/scores` (resumable parts) and estimate its class shares: the report."""
    if opts.method not in METHODS:
        raise DataError(f"--method must be one of {', '.join(METHODS)} (got {opts.method!r})")
    if opts.by and opts.by not in scan_table(input).collect_schema().names():
        raise DataError(f"{input}: no column {opts.by!r} to group by")
    parts = out_dir / "scores"
    predict_file(clf, input, parts, opts.text_column, opts.id_column, opts.part_rows, 1, on_part)
    columns = [f"score_{label}" for label in clf.labels]
    scored = read_output(parts)
    frame = scored.select(*columns, *([pl.col(opts.by).cast(pl.String)] if opts.by else [])).collect()
    kept = frame.filter(pl.col(columns[0]).is_not_null())  # empty texts get no scores, and no share
    proba = kept.select(columns).to_numpy()
    labels = clf.labels
    report = {
        "input": str(input),
        "rows": len(frame),
        "rows_scored": len(kept),
        "default_method": opts.method,
        "heldout_rows": len(heldout.y),
        "bootstrap": opts.bootstrap,
        "classes": {},
        "methods": {},
    }
    all_methods = estimate(heldout, proba, labels, METHODS, opts.bootstrap, opts.seed)
    report["classes"] = all_methods[opts.method]
    report["methods"] = {m: {label: s[label]["estimate"] for label in labels} for m, s in all_methods.items()}
    report["intervals"] = all_methods
    if opts.by:
        groups = kept[opts.by].fill_null("(none)").to_list()
        report["by"] = opts.by
        report["groups"] = group_shares(
            heldout, proba, groups, labels, opts.method, opts.bootstrap, opts.seed, opts.min_group_rows
        )
    return report


def markdown(report: dict) -> str:
    """The report as markdown: the default method's shares with intervals, every method's estimate beside it,
    and one row per group."""
    labels = list(report["classes"])
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        f"# Class shares of {report['input']} ({report['rows_scored']:,} comments scored of {report['rows']:,})",
        "",
        f"Method: {report['default_method']} (misclassification rates from {report['heldout_rows']} held-out "
        f"labelled rows); 95 % bootstrap intervals over those rows and the measured ones ({report['bootstrap']} "
        "draws). Shares in %.",
        "",
        "| class | share [95 % CI] | " + " | ".join(report["methods"]) + " |",
        "|---|---|" + "---|" * len(report["methods"]),
    ]
    for label in labels:
        c = report["classes"][label]
        others = " | ".join(pct(report["methods"][m][label]) for m in report["methods"])
        lines.append(f"| {label} | {pct(c['estimate'])} [{pct(c['low'])}, {pct(c['high'])}] | {others} |")
    if report.get("groups"):
        lines += ["", f"By {report['by']}:", "", "| group | rows | " + " | ".join(labels) + " |"]
        lines.append("|---|---|" + "---|" * len(labels))
        for name, g in report["groups"].items():
            if "refused" in g:
                cells = ["—"] * len(labels)
            else:
                s = g["shares"]
                cells = [f"{pct(s[x]['estimate'])} [{pct(s[x]['low'])}, {pct(s[x]['high'])}]" for x in labels]
            lines.append(f"| {name} | {g['rows']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
