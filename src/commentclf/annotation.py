"""The annotation loop: which pool comments to label next, the files Label Studio reads, and merging answers.

Query strategies are a few lines of numpy and scikit-learn each. small-text (the maintained active-learning
library) does not fit the pinned stack: its 1.4.1 release pulls torchtext, which has no wheel for our torch,
and its 2.x releases are pre-releases (docs/design.md).

Every strategy takes the candidates' model probabilities (n, labels) and, where it needs them, their e5
embeddings (n, dim, L2-normalised), and returns indices into the candidates, best first. The candidates are
the pool after the split removed every labelled and test text, so nothing labelled is ever suggested.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from commentclf.config import SuggestConfig
from commentclf.data import normalize_text, read_table
from commentclf.errors import DataError
from commentclf.files import write_atomic


def margins(proba: np.ndarray) -> np.ndarray:
    """Gap between the two most probable labels of each row: small = the model hesitates."""
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def by_margin(proba: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(margins(proba), kind="stable")[:k]


def by_minority(
    proba: np.ndarray, embeddings: np.ndarray, minority_embeddings: np.ndarray, k: int, confident: float
) -> np.ndarray:
    """Nearest neighbours of the labelled minority examples (cosine), leaving out rows the model already gives
    a label with probability >= `confident` (labelling those teaches it nothing)."""
    if len(minority_embeddings) == 0:
        raise DataError("strategy `minority` needs labelled examples of the minority label; there are none")
    similarity = (embeddings @ minority_embeddings.T).max(axis=1)
    order = np.argsort(-similarity, kind="stable")
    unsure = proba.max(axis=1) < confident
    return order[unsure[order]][:k]


def by_diversity(proba: np.ndarray, embeddings: np.ndarray, k: int, pool_factor: int, seed: int) -> np.ndarray:
    """k-means (k clusters) over the `pool_factor * k` most uncertain rows; from each cluster the row nearest
    its centre: uncertain comments that are not near-copies of each other."""
    from sklearn.cluster import KMeans

    candidates = by_margin(proba, pool_factor * k)
    if len(candidates) <= k:
        return candidates
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(embeddings[candidates])
    distance = km.transform(embeddings[candidates])
    picks = [candidates[np.flatnonzero(km.labels_ == c)[distance[km.labels_ == c, c].argmin()]] for c in range(k)]
    gap = margins(proba)
    return np.array(sorted(picks, key=lambda i: gap[i]))


@dataclass
class SuggestInput:
    proba: np.ndarray
    """(n, labels) model probabilities of the candidates."""
    embeddings: np.ndarray
    """(n, dim) L2-normalised embeddings of the candidates."""
    minority_embeddings: np.ndarray
    """(m, dim) L2-normalised embeddings of the labelled minority examples."""


def suggest(data: SuggestInput, cfg: SuggestConfig, seed: int) -> tuple[np.ndarray, list[str]]:
    """`cfg.batch_size` candidate indices and the strategy that picked each. `mixed` fills `cfg.shares` of the
    batch with each strategy in turn (what one already picked does not count twice), the rest by margin."""
    n = len(data.proba)
    k = min(cfg.batch_size, n)

    def pick(name: str, count: int, taken: set[int]) -> list[int]:
        if count <= 0:
            return []
        if name == "margin":
            order = by_margin(data.proba, n)
        elif name == "minority":
            order = by_minority(data.proba, data.embeddings, data.minority_embeddings, n, cfg.confident)
        elif name == "diverse":
            keep = np.array([i for i in range(n) if i not in taken])
            order = keep[by_diversity(data.proba[keep], data.embeddings[keep], count, cfg.diverse_pool_factor, seed)]
        else:  # random
            order = np.random.default_rng(seed).permutation(n)
        return [int(i) for i in order if int(i) not in taken][:count]

    if cfg.strategy == "mixed":
        plan = [(name, round(share * k)) for name, share in cfg.shares.items()] + [("margin", k)]
    else:
        plan = [(cfg.strategy, k)]
    chosen: list[int] = []
    by: list[str] = []
    for name, count in plan:
        new = pick(name, min(count, k - len(chosen)), set(chosen))
        chosen += new
        by += [name] * len(new)
    return np.array(chosen, dtype=int), by


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


@dataclass
class ImportReport:
    added: int = 0
    already_same: int = 0
    conflicting: list[dict] = field(default_factory=list)
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
) -> ImportReport:
    """Add new answers to the labelled file. A text already labelled the same way is counted, one labelled
    otherwise is kept out and listed (nothing is overwritten), one not in the pool or with an unknown label
    is kept out and listed. Importing the same answers twice adds nothing the second time."""
    report = ImportReport(skipped=skipped)
    existing = read_table(labeled)
    known = {
        normalize_text(t): lab for t, lab in zip(existing[text_column].to_list(), existing[label_column].to_list()) if t
    }
    pool = {normalize_text(t) for t in pool_texts if t}
    new_rows = []
    for text, label in answers:
        key = normalize_text(text)
        if label not in labels:
            report.unknown_label.append({"text": text, "label": label})
        elif key in known:
            if known[key] == label:
                report.already_same += 1
            else:
                report.conflicting.append({"text": text, "labelled": known[key], "answer": label})
        elif key not in pool:
            report.not_from_pool.append(text)
        else:
            known[key] = label
            new_rows.append({text_column: text, label_column: label})
    if new_rows:
        added = (
            pl.DataFrame(new_rows)
            .with_columns(
                pl.lit(None, dtype=pl.String).alias(c) for c in existing.columns if c not in (text_column, label_column)
            )
            .select(existing.columns)
        )
        merged = pl.concat([existing, added])
        parquet = labeled.suffix.lower() in (".parquet", ".pq")
        write_atomic(labeled, merged.write_parquet if parquet else merged.write_csv)
    report.added = len(new_rows)
    return report
