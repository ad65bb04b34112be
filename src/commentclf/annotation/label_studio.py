"""Label Studio, both ways: the labelling interface and the import tasks (with the ensemble's guess as a
pre-annotation) going out, and the annotators' answers (a JSON export, or the tasks CSV with its label
column filled in) merged into the labelled file coming back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from commentclf.data import normalize_text, read_table
from commentclf.errors import DataError
from commentclf.files import write_atomic


def label_config(labels: list[tuple[str, str]]) -> str:
    """Label Studio's labelling interface: the comment and one single-choice question over `labels`
    (name, description), the description shown as a hint."""
    view = ET.Element("View")
    ET.SubElement(view, "Text", name="text", value="$text")
    choices = ET.SubElement(view, "Choices", name="label", toName="text", choice="single", showInLine="true")
    for name, description in labels:
        ET.SubElement(choices, "Choice", value=name, hint=description)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def tasks(
    ids: list[str], texts: list[str], guesses: list[str], scores: list[float], strategies: list[str], model_version: str
) -> list[dict]:
    """Label Studio import tasks; the model's guess rides along as a prediction (a pre-annotation)."""
    return [
        {
            "data": {"text": text, "pool_id": id_, "strategy": strategy},
            "predictions": [
                {
                    "model_version": model_version,
                    "score": round(float(score), 4),
                    "result": [
                        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [guess]}}
                    ],
                }
            ],
        }
        for id_, text, guess, score, strategy in zip(ids, texts, guesses, scores, strategies)
    ]


def tasks_table(
    ids: list[str], texts: list[str], guesses: list[str], scores: list[float], strategies: list[str]
) -> pl.DataFrame:
    """The same tasks as a CSV for labelling without Label Studio: fill in `label`, then import it."""
    return pl.DataFrame(
        {
            "pool_id": ids,
            "text": texts,
            "suggested_label": guesses,
            "confidence": scores,
            "strategy": strategies,
            "label": [None] * len(ids),
        },
        schema_overrides={"label": pl.String},
    )


def review_tasks(
    texts: list[str], given: list[str], guesses: list[str], quality: list[float], model_version: str
) -> list[dict]:
    """Label Studio tasks for labelled rows to check: the given label is pre-selected (keep it, or change it),
    the teachers' guess and the label's quality score ride along in the task's data."""
    return [
        {
            "data": {"text": text, "given_label": label, "teachers_guess": guess, "label_quality": round(q, 4)},
            "predictions": [
                {
                    "model_version": model_version,
                    "score": round(float(q), 4),
                    "result": [
                        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ],
                }
            ],
        }
        for text, label, guess, q in zip(texts, given, guesses, quality)
    ]


def review_table(texts: list[str], given: list[str], guesses: list[str], quality: list[float]) -> pl.DataFrame:
    """The review tasks as a CSV: `label` starts as the given one; change it where it is wrong, then import."""
    return pl.DataFrame(
        {"text": texts, "given_label": given, "teachers_guess": guesses, "label_quality": quality, "label": given}
    )


HISTORY = "label_history"
"""Column of the labelled file that keeps a corrected row's earlier labels, oldest first, joined by `|`."""


@dataclass
class ImportReport:
    added: int = 0
    already_same: int = 0
    corrections: list[dict] = field(default_factory=list)
    """Answers that give a labelled row another label: applied only when accepted, listed either way."""
    corrected: int = 0
    skipped: int = 0
    not_from_pool: list[str] = field(default_factory=list)
    unknown_label: list[dict] = field(default_factory=list)


def read_answers(
    path: Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[tuple[str, str]], int]:
    """(text, label) answers of a Label Studio JSON export or of the suggestion CSV with its label column
    filled in, and how many tasks were skipped, cancelled or left blank."""
    if path.suffix.lower() == ".json":
        try:
            exported = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: not a Label Studio JSON export ({err})") from None
        if not isinstance(exported, list):
            raise DataError(f"{path}: a Label Studio JSON export is a list of tasks")
        answers, skipped = [], 0
        for task in exported:
            done = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
            choices = [
                r["value"]["choices"] for a in done[-1:] for r in a.get("result", []) if r.get("type") == "choices"
            ]
            if not choices or not choices[0]:
                skipped += 1
                continue
            answers.append((task["data"]["text"], choices[0][0]))
        return answers, skipped
    df = read_table(path)
    for column in (text_column, label_column):
        if column not in df.columns:
            raise DataError(f"{path}: missing column {column!r} (columns found: {df.columns})")
    rows = list(zip(df[text_column].to_list(), df[label_column].to_list()))
    answers = [(t, (lab or "").strip()) for t, lab in rows if t and (lab or "").strip()]
    return answers, len(rows) - len(answers)


def merge_answers(
    answers: list[tuple[str, str]],
    skipped: int,
    labeled: Path,
    pool_texts: list[str],
    labels: list[str],
    text_column: str,
    label_column: str,
    accept_corrections: bool = False,
) -> ImportReport:
    """Add new answers to the labelled file. A text already labelled the same way is counted; one labelled
    otherwise is a correction: listed, and applied only with `accept_corrections` (the earlier label kept in
    the HISTORY column, nothing overwritten silently). One not in the pool or with an unknown label is kept out
    and listed. Importing the same answers twice changes nothing the second time."""
    report = ImportReport(skipped=skipped)
    existing = read_table(labeled)
    row_of = {normalize_text(t): i for i, t in enumerate(existing[text_column].to_list()) if t}
    current = existing[label_column].to_list()
    history = existing[HISTORY].to_list() if HISTORY in existing.columns else [None] * len(existing)
    pool = {normalize_text(t) for t in pool_texts if t}
    new_rows, new_keys = [], {}
    for text, label in answers:
        key = normalize_text(text)
        if label not in labels:
            report.unknown_label.append({"text": text, "label": label})
        elif key in row_of or key in new_keys:
            before = current[row_of[key]] if key in row_of else new_keys[key]
            if before == label:
                report.already_same += 1
                continue
            report.corrections.append({"text": text, "labelled": before, "answer": label})
            if accept_corrections and key in row_of:
                i = row_of[key]
                history[i] = f"{history[i]}|{before}" if history[i] else before
                current[i] = label
                report.corrected += 1
        elif key not in pool:
            report.not_from_pool.append(text)
        else:
            new_keys[key] = label
            new_rows.append({text_column: text, label_column: label})
    if not new_rows and not report.corrected:
        return report
    merged = existing.with_columns(
        pl.Series(label_column, current, dtype=pl.String),
        *([pl.Series(HISTORY, history, dtype=pl.String)] if report.corrected or HISTORY in existing.columns else []),
    )
    if new_rows:
        added = pl.DataFrame(new_rows).with_columns(
            pl.lit(None, dtype=pl.String).alias(c) for c in merged.columns if c not in (text_column, label_column)
        )
        merged = pl.concat([merged, added.select(merged.columns)])
    parquet = labeled.suffix.lower() in (".parquet", ".pq")
    write_atomic(labeled, merged.write_parquet if parquet else merged.write_csv)
    report.added = len(new_rows)
    return report
