"""Label a file of any size with the ONNX student in constant memory, resumably (`commentclf predict --input`).

The input is read a batch at a time (data.table_batches); every `part_rows` input rows become one parquet
part, written under a temporary name and renamed when complete, and a small manifest records the finished
parts. A run that is killed leaves finished parts and a manifest that names them; the same command again
skips them and goes on from the first unfinished row. The manifest also records what the parts came from
(the input's size and modification time, the model's content hash, the settings): output written from
another input or model is refused, never mixed in.

Rows keep their input order and every input column; `id` is the input's id column, or the row number
(0-based) where the input has none. Empty or missing texts get no label (null label and scores), counted.
With `SetOptions` each row also gets its conformal prediction set (`set`), and with `abstain` a row whose set
is not a single class keeps its scores and set but no label, counted apart (`abstained`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from commentclf.conformal import set_labels, set_names
from commentclf.data import scan_table, table_batches, table_read_error, table_rows
from commentclf.errors import DataError
from commentclf.files import write_atomic

MANIFEST = "manifest.json"


def part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def write_output_manifest(out_dir: Path, manifest: dict) -> None:
    write_atomic(out_dir / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"))


def input_parts(path: Path, start: int, part_rows: int) -> Iterator[pl.DataFrame]:
    """Input rows from `start` on, `part_rows` at a time (the last part may be shorter), with their row number;
    one part in memory at a time (data.table_batches)."""
    pending: list[pl.DataFrame] = []
    size = 0
    for batch in table_batches(path, start, min(part_rows, 10_000)):
        pending.append(batch)
        size += len(batch)
        while size >= part_rows:
            merged = pl.concat(pending)
            yield merged.head(part_rows)
            rest = merged.slice(part_rows)
            pending, size = [rest], len(rest)
    if size:
        yield pl.concat(pending)


@dataclass(frozen=True)
class SetOptions:
    """Conformal prediction sets beside each label (commentclf.conformal): `predict --alpha [--abstain]`."""

    alpha: float = 0.1
    """Miscoverage: each class's sets hold its true label at least 1 - alpha of the time."""
    abstain: bool = False
    """Leave `label` empty where the set is not a single class (the row keeps its scores and set)."""


def predict_part(
    clf, df: pl.DataFrame, text_column: str, id_column: str, batch_size: int, sets: SetOptions | None = None
) -> pl.DataFrame:
    """One part: the input rows with `id`, `label`, one `score_<label>` column per label, and with `sets` a
    `set` column (the set's labels joined by '|')."""
    texts = [t or "" for t in df[text_column].to_list()]
    filled = [i for i, t in enumerate(texts) if t.strip()]
    proba = np.full((len(texts), len(clf.labels)), np.nan)
    labels, names = [None] * len(texts), [None] * len(texts)
    if filled:
        proba[filled] = clf.predict_proba([texts[i] for i in filled], batch_size=batch_size)
        chosen = np.zeros((len(filled), len(clf.labels)), dtype=bool)
        if sets is not None:
            chosen = clf.prediction_sets(proba[filled], sets.alpha)
            for i, name in zip(filled, set_names(chosen, clf.labels)):
                names[i] = name
        abstain = sets is not None and sets.abstain
        for i, label in zip(filled, set_labels(proba[filled], chosen, clf.labels, abstain)):
            labels[i] = label
    if id_column not in df.columns:
        df = df.with_columns(pl.col("__row").cast(pl.Int64).alias(id_column))
    return df.drop("__row").with_columns(
        pl.Series("label", labels, dtype=pl.String),
        *(pl.Series(f"score_{label}", proba[:, j]).fill_nan(None) for j, label in enumerate(clf.labels)),
        *([pl.Series("set", names, dtype=pl.String)] if sets is not None else []),
    )


def open_output(
    clf,
    input: Path,
    out_dir: Path,
    text_column: str,
    id_column: str,
    part_rows: int,
    engine: str,
    sets: SetOptions | None = None,
) -> tuple[pl.LazyFrame, dict]:
    """The input's lazy scan and the output's manifest: a fresh one, or the one a previous run of the same
    command left (its parts checked). Output of another input, model, setting or engine is refused."""
    scan = scan_table(input)
    try:
        columns = scan.collect_schema().names()
    except Exception as err:
        raise table_read_error(input, err) from None
    if text_column not in columns:
        raise DataError(f"{input}: missing column {text_column!r} (columns found: {columns})")
    stat = input.stat()
    source = {
        "input": str(input.resolve()),
        "input_bytes": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "model_version": clf.version,
        "text_column": text_column,
        "id_column": id_column,
        "part_rows": part_rows,
        "engine": engine,
        "sets": asdict(sets) if sets else None,
    }
    manifest = {"source": source, "parts": [], "complete": False}
    if (out_dir / MANIFEST).is_file():
        previous = json.loads((out_dir / MANIFEST).read_text())
        if previous["source"] != source:
            changed = sorted(k for k in source if previous["source"].get(k) != source[k])
            raise DataError(
                f"{out_dir} holds output of another run (different {', '.join(changed)}); "
                "give another --output or delete it"
            )
        manifest = previous
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise DataError(f"{out_dir} exists and is not a predict output (no {MANIFEST}); give another --output")
    for part in manifest["parts"]:
        if not (out_dir / part["file"]).is_file():
            raise DataError(f"{out_dir}: {part['file']} is in the manifest but missing; delete the folder to redo")
    return scan, manifest


def add_part(out_dir: Path, manifest: dict, first_row: int, labelled: pl.DataFrame) -> dict:
    """Write the next part (atomically) and record it in the manifest, which is rewritten at once."""
    part = {
        "file": part_name(len(manifest["parts"])),
        "first_row": first_row,
        "rows": len(labelled),
        "unlabelled": labelled["label"].null_count(),
        # no label although the text was scored: its set was not a single class (--abstain)
        "abstained": labelled.filter(pl.col("label").is_null() & pl.col("set").is_not_null()).height
        if "set" in labelled.columns
        else 0,
    }
    write_atomic(out_dir / part["file"], labelled.write_parquet)
    manifest["parts"].append(part)
    write_output_manifest(out_dir, manifest)
    return part


def finish_output(out_dir: Path, manifest: dict, input: Path, total: int) -> dict:
    """Close a manifest whose parts cover the input: totals, a row-count check, `complete`."""
    manifest["rows"] = sum(p["rows"] for p in manifest["parts"])
    manifest["unlabelled"] = sum(p["unlabelled"] for p in manifest["parts"])
    manifest["abstained"] = sum(p.get("abstained", 0) for p in manifest["parts"])
    if manifest["rows"] != total:
        raise DataError(f"{input}: read {manifest['rows']} rows but the file has {total}; was it changed?")
    manifest["complete"] = True
    write_output_manifest(out_dir, manifest)
    return manifest


LabelParts = Callable[[Iterator[pl.DataFrame]], Iterator[pl.DataFrame]]
"""An engine: input parts (with their `__row`) in, the same rows labelled out, in input order, as they are done."""


def predict_file(
    clf,
    input: Path,
    out_dir: Path,
    text_column: str = "text",
    id_column: str = "id",
    part_rows: int = 10_000,
    batch_size: int = 1,
    on_part: Callable[[dict, int], None] | None = None,
    engine: tuple[str, LabelParts] | None = None,
    sets: SetOptions | None = None,
) -> dict:
    """Label `input` into parquet parts under `out_dir`, resuming from its manifest; returns the manifest.
    `on_part(part, total_rows)` is called after each part is written (progress). `engine` (name, LabelParts)
    labels the parts elsewhere (inference.ray_predict); by default they are labelled here, one after another.
    `sets`: a conformal set column beside the label (and abstention)."""
    name, label_parts = engine or ("local", None)
    scan, manifest = open_output(clf, input, out_dir, text_column, id_column, part_rows, name, sets)
    if manifest["complete"]:
        return manifest
    out_dir.mkdir(parents=True, exist_ok=True)
    start = sum(p["rows"] for p in manifest["parts"])
    total = table_rows(input)
    parts = input_parts(input, start, part_rows)
    if total == 0:  # a header-only file still gives an output (one empty part) with the output's columns
        parts, label_parts = iter([scan.with_row_index("__row").head(0).collect()]), None
    if label_parts is None:
        labelled = (predict_part(clf, df, text_column, id_column, batch_size, sets) for df in parts)
    else:
        labelled = label_parts(parts)
    for df in labelled:
        part = add_part(out_dir, manifest, start, df)
        start += len(df)
        if on_part:
            on_part(part, total)
    return finish_output(out_dir, manifest, input, total)


def read_output(out_dir: Path) -> pl.LazyFrame:
    """The labelled rows of a finished `predict_file`, in input order (its parts, in order)."""
    manifest = json.loads((out_dir / MANIFEST).read_text())
    if not manifest["complete"]:
        raise DataError(f"{out_dir}: unfinished; run the same predict command again to complete it")
    return pl.scan_parquet([out_dir / p["file"] for p in manifest["parts"]])


def export_output(out_dir: Path, target: Path) -> None:
    """Write a finished output as one CSV or parquet file, streamed (constant memory)."""
    lazy = read_output(out_dir)
    if target.suffix.lower() == ".csv":
        write_atomic(target, lambda p: lazy.sink_csv(p))
    else:
        write_atomic(target, lambda p: lazy.sink_parquet(p))
