"""The data contract: read, validate, clean and split the labelled seed, the pool and an optional test file.

Rules (each one counted in the report that goes to metrics/data.json, so that nothing disappears silently):
* texts are normalised (Unicode NFC, surrounding whitespace stripped) and cut at `max_chars`;
* empty / whitespace-only texts are dropped;
* exact duplicates are dropped (a text given twice with *different* labels is dropped altogether:
  the annotation contradicts itself and no side can be trusted);
* test texts are removed from the labelled file (no train/test leakage), labelled and test texts from
  the pool (the students must never be trained on pseudo-labels of a test comment).
Errors name the file, the column and the row (1-based line number of the file, header = line 1).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from commentclf.config import DataConfig, SplitConfig

SPLITS = ("train", "dev", "test")


class DataError(ValueError):
    """An input file breaks the data contract; the message says which file, column and row."""


def text_id(text: str) -> str:
    """Stable id of a (normalised) text: the same comment gets the same id in every run and split."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def normalize_text(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (UTF-8) or parquet file with every column as text; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            # keep_default_na=False: a comment that reads "NA" or "null" is text, not a missing value.
            # skip_blank_lines=False: in a one-column file a whitespace-only comment is a blank line, and
            # pandas would drop it without a trace; here it becomes an empty text, dropped and counted.
            df = pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" else ",",
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv or .parquet)")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not valid UTF-8 (byte {err.start}: {err.reason}); re-save the file as UTF-8"
        ) from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: malformed CSV: {err}") from None
    except DataError:
        raise
    except Exception as err:  # pyarrow raises several types for a broken parquet file
        raise DataError(f"{path}: cannot read file ({type(err).__name__}: {err})") from None
    return df


def _require_columns(df: pd.DataFrame, path: str | Path, columns: list[str]) -> None:
    for col in columns:
        if col not in df.columns:
            raise DataError(
                f"{path}: missing column {col!r} (columns found: {list(df.columns)}); "
                "set data.text_column / data.label_column in params.yaml"
            )


@dataclass
class CleanReport:
    """What happened to the rows of one file."""

    rows_read: int = 0
    empty: int = 0
    truncated: int = 0
    duplicates: int = 0
    conflicting_labels: int = 0
    overlap_removed: int = 0
    kept: int = 0


def _clean_texts(df: pd.DataFrame, text_col: str, max_chars: int, report: CleanReport) -> pd.DataFrame:
    texts = df[text_col].map(lambda t: "" if t is None or t != t else str(t))  # t != t: NaN
    texts = texts.map(normalize_text)
    empty = texts == ""
    report.empty = int(empty.sum())
    too_long = texts.str.len() > max_chars
    report.truncated = int(too_long.sum())
    texts = texts.where(~too_long, texts.str.slice(0, max_chars).str.rstrip())
    out = df.assign(text=texts)
    out["row"] = np.arange(len(df)) + 2  # line number in a CSV with a header (1-based)
    return out[~empty]


def load_labeled(path: str | Path, cfg: DataConfig, labels: list[str]) -> tuple[pd.DataFrame, CleanReport]:
    """Read and clean a labelled file; returns columns id, text, label."""
    df = read_table(path)
    _require_columns(df, path, [cfg.text_column, cfg.label_column])
    report = CleanReport(rows_read=len(df))
    raw_labels = df[cfg.label_column].map(lambda v: "" if v is None or v != v else str(v).strip())
    raw_texts = df[cfg.text_column].map(lambda v: "" if v is None or v != v else str(v).strip())
    # A blank line (no text, no label) is an empty row, counted below, not a labelling error.
    unknown = ~raw_labels.isin(labels) & ~((raw_labels == "") & (raw_texts == ""))
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        bad = sorted(set(raw_labels[unknown]))
        raise DataError(
            f"{path}: column {cfg.label_column!r}, row {i + 2}: unknown label {raw_labels.iloc[i]!r} "
            f"({int(unknown.sum())} row(s) in all, values {bad[:5]}); allowed labels: {labels}"
        )
    df = df.assign(label=raw_labels)
    df = _clean_texts(df, cfg.text_column, cfg.max_chars, report)

    n_labels = df.groupby("text")["label"].nunique()
    conflicted = df["text"].isin(n_labels[n_labels > 1].index)
    report.conflicting_labels = int(conflicted.sum())
    df = df[~conflicted]
    dup = df.duplicated("text", keep="first")
    report.duplicates = int(dup.sum())
    df = df[~dup]
    report.kept = len(df)
    out = pd.DataFrame({"id": df["text"].map(text_id), "text": df["text"], "label": df["label"]})
    return out.reset_index(drop=True), report


def load_pool(path: str | Path, cfg: DataConfig, exclude: set[str]) -> tuple[pd.DataFrame, CleanReport]:
    """Read and clean the unlabelled pool; rows whose text is in `exclude` (labelled/test) are removed."""
    df = read_table(path)
    _require_columns(df, path, [cfg.text_column])
    report = CleanReport(rows_read=len(df))
    df = _clean_texts(df, cfg.text_column, cfg.max_chars, report)
    dup = df.duplicated("text", keep="first")
    report.duplicates = int(dup.sum())
    df = df[~dup]
    overlap = df["text"].isin(exclude)
    report.overlap_removed = int(overlap.sum())
    df = df[~overlap]
    report.kept = len(df)
    out = pd.DataFrame({"id": df["text"].map(text_id), "text": df["text"]})
    return out.reset_index(drop=True), report


def stratified_split(
    df: pd.DataFrame, fractions: dict[str, float], seed: int, min_per_label: int
) -> dict[str, pd.DataFrame]:
    """Split per label so every label is represented in every split (at least one row each).

    `fractions` maps split name -> share; the first split takes the remainder. Per-label rounding keeps
    the class mix of every split as close to the whole as the counts allow.
    """
    names = list(fractions)
    counts = df["label"].value_counts()
    too_few = counts[counts < min_per_label]
    if len(too_few):
        detail = ", ".join(f"{label!r} has {n}" for label, n in too_few.items())
        raise DataError(
            f"too few labelled rows to split ({detail}; each label needs at least "
            f"{min_per_label} for {', '.join(names)}). Label more rows or lower split.min_per_label."
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
    for label in sorted(counts.index):
        rows = df[df["label"] == label]
        rows = rows.iloc[rng.permutation(len(rows))]
        start = 0
        sizes = {}
        for name in names[1:]:
            sizes[name] = max(1, int(round(len(rows) * fractions[name])))
        if len(rows) - sum(sizes.values()) < 1:
            raise DataError(f"label {label!r}: {len(rows)} rows cannot fill {names} (sizes {sizes})")
        for name in names[1:]:
            parts[name].append(rows.iloc[start : start + sizes[name]])
            start += sizes[name]
        parts[names[0]].append(rows.iloc[start:])
    # Sort by id so the files do not depend on the order labels were processed in.
    return {name: pd.concat(p).sort_values("id").reset_index(drop=True) for name, p in parts.items()}


@dataclass
class SplitResult:
    splits: dict[str, pd.DataFrame]
    pool: pd.DataFrame
    reports: dict[str, CleanReport] = field(default_factory=dict)

    def metrics(self, labels: list[str]) -> dict:
        out: dict = {name: asdict(rep) for name, rep in self.reports.items()}
        out["split"] = {
            name: {"rows": len(df), **{label: int((df["label"] == label).sum()) for label in labels}}
            for name, df in self.splits.items()
        }
        out["pool_rows"] = len(self.pool)
        return out


def build_splits(data: DataConfig, split: SplitConfig, labels: list[str]) -> SplitResult:
    """The whole `split` stage: validate every file, clean, split, and remove overlaps."""
    labeled, lab_report = load_labeled(data.labeled, data, labels)
    reports = {"labeled": lab_report}
    external_test = data.test is not None and Path(data.test).resolve() != Path(data.labeled).resolve()
    if external_test:
        test, test_report = load_labeled(data.test, data, labels)
        reports["test"] = test_report
        leak = labeled["text"].isin(set(test["text"]))
        lab_report.overlap_removed = int(leak.sum())
        labeled = labeled[~leak]
        lab_report.kept = len(labeled)
        dev_share = split.dev_frac
        parts = stratified_split(
            labeled, {"train": 1 - dev_share, "dev": dev_share}, split.seed, max(2, split.min_per_label - 1)
        )
        parts["test"] = test.sort_values("id").reset_index(drop=True)
    else:
        if split.test_frac <= 0:
            raise DataError("split.test_frac must be > 0 when data.test is not given")
        fractions = {"train": 1 - split.dev_frac - split.test_frac, "dev": split.dev_frac, "test": split.test_frac}
        if fractions["train"] <= 0:
            raise DataError(f"split.dev_frac + split.test_frac = {1 - fractions['train']:.2f} leaves no train rows")
        parts = stratified_split(labeled, fractions, split.seed, split.min_per_label)
    seen = set().union(*(set(df["text"]) for df in parts.values()))
    pool, pool_report = load_pool(data.unlabeled, data, seen)
    reports["pool"] = pool_report
    return SplitResult(splits=parts, pool=pool.sort_values("id").reset_index(drop=True), reports=reports)


def write_splits(result: SplitResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in result.splits.items():
        df.to_parquet(out_dir / f"{name}.parquet", index=False)
    result.pool.to_parquet(out_dir / "pool.parquet", index=False)


def read_split(name: str, split_dir: Path = Path("data/split")) -> pd.DataFrame:
    path = split_dir / f"{name}.parquet"
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro split` first")
    return pd.read_parquet(path)
