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

import csv
import hashlib
import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from commentclf.config import DataConfig, SplitConfig
from commentclf.errors import DataError

SPLITS = ("train", "dev", "calib", "test")


def text_id(text: str) -> str:
    """Stable id of a (normalised) text: the same comment gets the same id in every run and split."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def normalize_text(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _table_suffix(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".tsv", ".txt"):
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv or .parquet)")
    return suffix


def read_table(path: str | Path) -> pl.DataFrame:
    """Read a CSV (UTF-8) or parquet file with every column as text; errors name the file."""
    path = Path(path)
    suffix = _table_suffix(path)
    if suffix in (".parquet", ".pq"):
        try:
            df = pl.read_parquet(path)
        except Exception as err:  # a broken parquet file raises several types
            raise DataError(f"{path}: cannot read file ({type(err).__name__}: {err})") from None
        return df.with_columns(pl.col(c).cast(pl.String) for c in df.columns)
    try:
        # infer_schema=False: every column is text, so a comment that reads "NA" or "null" stays text;
        # a blank line stays a row (of nulls), dropped later and counted, never lost without a trace.
        return pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema=False)
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: the file is empty (no header, no rows)") from None
    except pl.exceptions.ComputeError as err:
        raise _csv_error(path, err) from None


def _csv_error(path: Path, err: Exception) -> DataError:
    if "utf-8" in str(err).lower():
        return DataError(f"{path}: not valid UTF-8 ({err}); re-save the file as UTF-8")
    return DataError(f"{path}: malformed CSV: {str(err).splitlines()[0]}")


def scan_table(path: str | Path) -> pl.LazyFrame:
    """`read_table` for files of any size, as a lazy scan (every column as text): its columns without reading
    the rows. The rows of a large file are read by `table_batches`, which holds one batch at a time; errors
    that only show while reading (bad UTF-8, malformed rows) surface there as the same DataError."""
    path = Path(path)
    suffix = _table_suffix(path)
    try:
        if suffix in (".parquet", ".pq"):
            scan = pl.scan_parquet(path)
            return scan.with_columns(pl.all().cast(pl.String))
        return pl.scan_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema=False)
    except Exception as err:
        raise table_read_error(path, err) from None


def table_batches(path: str | Path, start: int = 0, batch_rows: int = 10_000) -> Iterator[pl.DataFrame]:
    """The rows of a table file from row `start` on, every column as text plus its row number (`__row`), in
    batches of at most `batch_rows` rows, holding one batch at a time. Parquet: pyarrow's batch reader, row
    group by row group (skipping whole groups before `start`); CSV: Python's csv module, line by line. polars'
    streaming engine runs ahead of a slow consumer and buffers the rows it has read (its memory grew with
    the input: docs/design.md), which a file of millions of comments labelled at ~100 per second cannot
    afford."""
    path = Path(path)
    suffix = _table_suffix(path)
    try:
        if suffix in (".parquet", ".pq"):
            yield from _parquet_batches(path, start, batch_rows)
        else:
            yield from _csv_batches(path, "\t" if suffix == ".tsv" else ",", start, batch_rows)
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as err:
        raise table_read_error(path, err) from None


def table_rows(path: str | Path) -> int:
    """Rows of a table file, in constant memory (parquet: its metadata; CSV: one pass of the csv module)."""
    path = Path(path)
    if _table_suffix(path) in (".parquet", ".pq"):
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException) as err:
            raise table_read_error(path, err) from None
    return sum(len(batch) for batch in table_batches(path))


def _parquet_batches(path: Path, start: int, batch_rows: int) -> Iterator[pl.DataFrame]:
    file = pq.ParquetFile(path)
    first, groups = 0, []
    for g in range(file.num_row_groups):  # the row groups that hold rows from `start` on
        rows = file.metadata.row_group(g).num_rows
        if first + rows > start or groups:
            groups.append(g)
        else:
            first += rows
    if not groups:
        return
    for batch in file.iter_batches(batch_size=batch_rows, row_groups=groups):
        df = pl.from_arrow(pa.Table.from_batches([batch])).with_columns(pl.all().cast(pl.String))
        df = df.with_row_index("__row", offset=first)
        first += len(df)
        df = df.filter(pl.col("__row") >= start)
        if len(df):
            yield df


def _csv_batches(path: Path, separator: str, start: int, batch_rows: int) -> Iterator[pl.DataFrame]:
    csv.field_size_limit(2**31 - 1)  # a huge text is read whole and judged later (data.max_chars), not here
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=separator)
        header = next(reader, None)
        if header is None:
            return
        if len(set(header)) < len(header):
            raise DataError(f"{path}: duplicate column names in the header {header}")
        schema = {name: pl.String for name in header}
        first = 0
        while True:
            rows = []
            for row in itertools.islice(reader, batch_rows):
                if not row:  # a blank line, as polars skips it
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path}: malformed CSV: line {reader.line_num} has {len(row)} fields, the header {len(header)}"
                    )
                rows.append(row)  # an empty field stays "" (csv cannot tell quoted from unquoted empties)
            if not rows:
                return
            if first + len(rows) > start:
                df = pl.DataFrame(rows, schema=schema, orient="row").with_row_index("__row", offset=first)
                yield df.filter(pl.col("__row") >= start)
            first += len(rows)


def table_read_error(path: Path, err: Exception) -> DataError:
    if isinstance(err, (pl.exceptions.ComputeError, UnicodeDecodeError, csv.Error)) and path.suffix.lower() not in (
        ".parquet",
        ".pq",
    ):
        return _csv_error(path, err)
    return DataError(f"{path}: cannot read file ({type(err).__name__}: {err})")


def _require_columns(df: pl.DataFrame, path: str | Path, columns: list[str]) -> None:
    """The columns are there, and so is at least one row."""
    for col in columns:
        if col not in df.columns:
            raise DataError(
                f"{path}: missing column {col!r} (columns found: {df.columns}); "
                "set data.text_column / data.label_column in params.yaml"
            )
    if df.height == 0:
        raise DataError(f"{path}: no rows, only a header")


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


def _stripped(df: pl.DataFrame, column: str) -> list[str]:
    return [("" if v is None else str(v)).strip() for v in df[column].to_list()]


def _clean_texts(df: pl.DataFrame, text_col: str, max_chars: int, report: CleanReport) -> pl.DataFrame:
    texts = [normalize_text("" if t is None else str(t)) for t in df[text_col].to_list()]
    report.empty = sum(t == "" for t in texts)
    report.truncated = sum(len(t) > max_chars for t in texts)
    texts = [t[:max_chars].rstrip() if len(t) > max_chars else t for t in texts]
    out = df.with_columns(
        pl.Series("text", texts, dtype=pl.String),
        pl.Series("row", np.arange(len(df)) + 2),  # line number in a CSV with a header (1-based)
    )
    return out.filter(pl.col("text") != "")


def _drop_duplicates(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The first row of each text; how many were dropped."""
    kept = df.unique(subset="text", keep="first", maintain_order=True)
    return kept, len(df) - len(kept)


def load_labeled(path: str | Path, cfg: DataConfig, labels: list[str]) -> tuple[pl.DataFrame, CleanReport]:
    """Read and clean a labelled file; returns columns id, text, label."""
    df = read_table(path)
    _require_columns(df, path, [cfg.text_column, cfg.label_column])
    report = CleanReport(rows_read=len(df))
    raw_labels, raw_texts = _stripped(df, cfg.label_column), _stripped(df, cfg.text_column)
    # A blank line (no text, no label) is an empty row, counted below, not a labelling error.
    unknown = [i for i, (y, t) in enumerate(zip(raw_labels, raw_texts)) if y not in labels and (y or t)]
    if unknown:
        i = unknown[0]
        bad = sorted({raw_labels[j] for j in unknown})
        raise DataError(
            f"{path}: column {cfg.label_column!r}, row {i + 2}: unknown label {raw_labels[i]!r} "
            f"({len(unknown)} row(s) in all, values {bad[:5]}); allowed labels: {labels}"
        )
    df = df.with_columns(pl.Series("label", raw_labels, dtype=pl.String))
    df = _clean_texts(df, cfg.text_column, cfg.max_chars, report)

    conflicted = pl.col("label").n_unique().over("text") > 1
    report.conflicting_labels = df.select(conflicted.sum()).item()
    df, report.duplicates = _drop_duplicates(df.filter(~conflicted))
    report.kept = len(df)
    return df.select(pl.col("text").map_elements(text_id, return_dtype=pl.String).alias("id"), "text", "label"), report


def load_pool(path: str | Path, cfg: DataConfig, exclude: set[str]) -> tuple[pl.DataFrame, CleanReport]:
    """Read and clean the unlabelled pool; rows whose text is in `exclude` (labelled/test) are removed."""
    df = read_table(path)
    _require_columns(df, path, [cfg.text_column])
    report = CleanReport(rows_read=len(df))
    df, report.duplicates = _drop_duplicates(_clean_texts(df, cfg.text_column, cfg.max_chars, report))
    overlap = pl.col("text").is_in(list(exclude))
    report.overlap_removed = df.select(overlap.sum()).item()
    df = df.filter(~overlap)
    report.kept = len(df)
    return df.select(pl.col("text").map_elements(text_id, return_dtype=pl.String).alias("id"), "text"), report


def stratified_split(
    df: pl.DataFrame, fractions: dict[str, float], seed: int, min_per_label: int
) -> dict[str, pl.DataFrame]:
    """Split per label so every label is represented in every split (at least one row each).

    `fractions` maps split name -> share; the first split takes the remainder. Per-label rounding keeps
    the class mix of every split as close to the whole as the counts allow.
    """
    names = list(fractions)
    if df.height == 0:
        raise DataError("no labelled rows left to split (every row was empty, a duplicate or a conflict)")
    counts = Counter(df["label"].to_list())
    too_few = {label: n for label, n in counts.items() if n < min_per_label}
    if too_few:
        detail = ", ".join(f"{label!r} has {n}" for label, n in sorted(too_few.items(), key=lambda kv: kv[1]))
        raise DataError(
            f"too few labelled rows to split ({detail}; each label needs at least "
            f"{min_per_label} for {', '.join(names)}). Label more rows or lower split.min_per_label."
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pl.DataFrame]] = {name: [] for name in names}
    for label in sorted(counts):
        rows = df.filter(pl.col("label") == label)
        rows = rows[rng.permutation(len(rows))]
        start = 0
        sizes = {name: max(1, int(round(len(rows) * fractions[name]))) for name in names[1:]}
        if len(rows) - sum(sizes.values()) < 1:
            raise DataError(f"label {label!r}: {len(rows)} rows cannot fill {names} (sizes {sizes})")
        for name in names[1:]:
            parts[name].append(rows[start : start + sizes[name]])
            start += sizes[name]
        parts[names[0]].append(rows[start:])
    # Sort by id so the files do not depend on the order labels were processed in.
    return {name: pl.concat(p).sort("id") for name, p in parts.items()}


@dataclass
class SplitResult:
    splits: dict[str, pl.DataFrame]
    pool: pl.DataFrame
    reports: dict[str, CleanReport] = field(default_factory=dict)

    def metrics(self, labels: list[str]) -> dict:
        out: dict = {name: asdict(rep) for name, rep in self.reports.items()}
        out["split"] = {
            name: {"rows": len(df), **{label: int((df["label"] == label).sum()) for label in labels}}
            for name, df in self.splits.items()
        }
        out["pool_rows"] = len(self.pool)
        return out


def _with_train(fractions: dict[str, float]) -> dict[str, float]:
    """{"train": what is left, **fractions}; refused when nothing is left to train on."""
    left = 1 - sum(fractions.values())
    if left <= 0:
        named = " + ".join(f"split.{name}_frac" for name in fractions)
        raise DataError(f"{named} = {1 - left:.2f} leaves no train rows")
    return {"train": left, **fractions}


def build_splits(data: DataConfig, split: SplitConfig, labels: list[str]) -> SplitResult:
    """The whole `split` stage: validate every file, clean, split, and remove overlaps."""
    labeled, lab_report = load_labeled(data.labeled, data, labels)
    reports = {"labeled": lab_report}
    external_test = data.test is not None and Path(data.test).resolve() != Path(data.labeled).resolve()
    if external_test:
        test, test_report = load_labeled(data.test, data, labels)
        reports["test"] = test_report
        leak = pl.col("text").is_in(test["text"].to_list())
        lab_report.overlap_removed = labeled.select(leak.sum()).item()
        labeled = labeled.filter(~leak)
        lab_report.kept = len(labeled)
        # the slices after train are cut in this order, so calib does not move dev's rows
        fractions = {"dev": split.dev_frac, "calib": split.calib_frac}
        parts = stratified_split(labeled, _with_train(fractions), split.seed, split.min_per_label - 1)
        parts["test"] = test.sort("id")
    else:
        if split.test_frac <= 0:
            raise DataError("split.test_frac must be > 0 when data.test is not given")
        fractions = {"dev": split.dev_frac, "test": split.test_frac, "calib": split.calib_frac}
        parts = stratified_split(labeled, _with_train(fractions), split.seed, split.min_per_label)
    seen = set().union(*(set(df["text"].to_list()) for df in parts.values()))
    pool, pool_report = load_pool(data.unlabeled, data, seen)
    reports["pool"] = pool_report
    return SplitResult(splits=parts, pool=pool.sort("id"), reports=reports)


def write_splits(result: SplitResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in result.splits.items():
        df.write_parquet(out_dir / f"{name}.parquet")
    result.pool.write_parquet(out_dir / "pool.parquet")


def read_split(split_dir: str | Path, name: str) -> pl.DataFrame:
    path = Path(split_dir) / f"{name}.parquet"
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro split` first")
    return pl.read_parquet(path)


def most_frequent(values: list[str]) -> str:
    """The most frequent value; a tie goes to the value seen first."""
    return Counter(values).most_common(1)[0][0]
