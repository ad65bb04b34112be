"""How much of a file is each class: `commentclf prevalence --input FILE [--by COLUMN]`.

The file is scored with `streaming.predict_file` into resumable parts, so a killed run goes on where it
stopped, and memory holds the scores (labels x 8 bytes a row), never the texts. The shares, their intervals
and the method's choice are commentclf.quantification's; the misclassification rates come from the held-out
file (by default the calib split, which no model trained on). `--adjust-prior` also writes each row's scores
re-weighted to the estimated shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from commentclf.data import read_table, scan_table
from commentclf.errors import DataError
from commentclf.files import write_atomic
from commentclf.inference.streaming import predict_file, read_output
from commentclf.quantification import (
    METHODS,
    HeldOut,
    adjusted_posteriors,
    choose_method,
    estimate,
    group_shares,
)

ADJUSTED = "adjusted.parquet"
"""`--adjust-prior`'s output in the report folder: id, adjusted_label, adjusted_score_<label>."""


@dataclass
class PrevalenceOptions:
    """How `prevalence_of_file` estimates (the CLI's options)."""

    method: str = "auto"
    """The method whose shares are the answer (every method is reported beside it overall); `auto`: the one
    `choose_method` picks on the held-out rows."""
    by: str | None = None
    """A column of the input to report per group of (an article id, a month)."""
    bootstrap: int = 200
    folds: int = 4
    protocol_samples: int = 50
    adjust_prior: bool = False
    """Also write each row's scores re-weighted to the estimated shares (Saerens et al.) and their labels."""
    min_group_rows: int = 20
    seed: int = 0
    text_column: str = "text"
    id_column: str = "id"
    part_rows: int = 10_000


def read_heldout(clf, path: Path, recalibrate: bool = True) -> HeldOut:
    """The held-out file's rows (columns `text` and `label`, as data/split/calib.parquet has) scored by `clf`;
    `recalibrate`: the scores are recalibrated on them before every method but CC (prevalence.recalibrate)."""
    df = read_table(path)
    for column in ("text", "label"):
        if column not in df.columns:
            raise DataError(f"{path}: missing column {column!r} (columns found: {df.columns})")
    unknown = sorted(set(df["label"].to_list()) - set(clf.labels))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not the model's ({clf.labels})")
    y = np.array([clf.labels.index(label) for label in df["label"]])
    return HeldOut(clf.predict_proba(df["text"].to_list()), y, recalibrate)


def prevalence_of_file(
    clf, input: Path, heldout: HeldOut, out_dir: Path, opts: PrevalenceOptions, on_part: Callable | None = None
) -> dict:
    """Score `input` into `out_dir/scores` (resumable parts) and estimate its class shares: the report."""
    if opts.method not in (*METHODS, "auto"):
        raise DataError(f"--method must be auto or one of {', '.join(METHODS)} (got {opts.method!r})")
    if opts.by and opts.by not in scan_table(input).collect_schema().names():
        raise DataError(f"{input}: no column {opts.by!r} to group by")
    parts = out_dir / "scores"
    predict_file(clf, input, parts, opts.text_column, opts.id_column, opts.part_rows, 1, on_part)
    columns = [f"score_{label}" for label in clf.labels]
    scored = read_output(parts)
    total = scored.select(pl.len()).collect().item()
    kept = (  # empty texts get no scores, and no share
        scored.filter(pl.col(columns[0]).is_not_null())
        .select(*columns, *([pl.col(opts.by).cast(pl.String)] if opts.by else []))
        .collect()
    )
    proba = kept.select(columns).to_numpy()
    labels = clf.labels
    choice = None
    if opts.method == "auto":
        choice = choose_method(heldout, opts.folds, opts.protocol_samples, opts.seed)
    method = choice["method"] if choice else opts.method
    report = {
        "input": str(input),
        "rows": total,
        "rows_scored": len(kept),
        "default_method": method,
        **({"choice": choice} if choice else {}),
        "heldout_rows": len(heldout.y),
        "bootstrap": opts.bootstrap,
        "classes": {},
        "methods": {},
    }
    all_methods = estimate(heldout, proba, labels, METHODS, opts.bootstrap, opts.seed)
    report["classes"] = all_methods[method]
    report["methods"] = {m: {label: s[label]["estimate"] for label in labels} for m, s in all_methods.items()}
    report["intervals"] = all_methods
    if opts.by:
        groups = kept[opts.by].fill_null("(none)").to_list()
        report["by"] = opts.by
        report["groups"] = group_shares(
            heldout, proba, groups, labels, method, opts.bootstrap, opts.seed, opts.min_group_rows
        )
    if opts.adjust_prior:
        shares = np.array([report["classes"][label]["estimate"] for label in labels])
        report["adjusted"] = write_adjusted(heldout, scored, columns, labels, shares, out_dir / ADJUSTED)
    return report


def write_adjusted(
    heldout: HeldOut, scored: pl.LazyFrame, columns: list[str], labels: list[str], shares: np.ndarray, path: Path
) -> dict:
    """`--adjust-prior`: each scored row's id, its scores re-weighted to the estimated `shares` (the answer's)
    and their label, as parquet at `path`."""
    kept = scored.filter(pl.col(columns[0]).is_not_null()).select("id", *columns).collect()
    prior, posteriors = adjusted_posteriors(heldout, kept.select(columns).to_numpy(), shares)
    changed = int((posteriors.argmax(1) != kept.select(columns).to_numpy().argmax(1)).sum())
    out = pl.DataFrame(
        {
            "id": kept["id"],
            "adjusted_label": [labels[j] for j in posteriors.argmax(1)],
            **{f"adjusted_score_{label}": posteriors[:, j] for j, label in enumerate(labels)},
        }
    )
    write_atomic(path, out.write_parquet)
    return {"file": str(path), "prior": dict(zip(labels, prior.tolist())), "labels_changed": changed}


def markdown(report: dict) -> str:
    """The report as markdown: the default method's shares with intervals, every method's estimate beside it,
    and one row per group."""
    labels = list(report["classes"])
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    auto = " (auto: chosen on shifted samples of the held-out rows)" if report.get("choice") else ""
    lines = [
        f"# Class shares of {report['input']} ({report['rows_scored']:,} comments scored of {report['rows']:,})",
        "",
        f"Method: {report['default_method']}{auto} "
        f"(misclassification rates from {report['heldout_rows']} held-out "
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
