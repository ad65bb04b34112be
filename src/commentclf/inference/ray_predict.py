"""`commentclf predict --engine ray`: the ONNX student on a pool of Ray actors (commentclf.ray_engine), the
results filed by the driver exactly as the local engine files them (`streaming.predict_file`): same parts,
same manifest, and a killed run goes on from its last filed part, on either engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path

import polars as pl

from commentclf.inference.streaming import SetOptions, predict_file, predict_part
from commentclf.ray_engine import ORDER, RayOptions, import_ray, map_parts, next_rows


class Predictor:
    """One actor: the ONNX student, loaded once, labelling Arrow batches with the local engine's code."""

    def __init__(
        self,
        model_dir: str,
        max_length: int,
        prefix: str,
        threads: int,
        columns: tuple,
        batch_size: int,
        sets: SetOptions | None = None,
    ):
        from commentclf.student.onnx_model import OnnxClassifier  # in the actor, not the driver

        # One text per call keeps one thread busy, not two: an actor of T CPUs makes T one-thread calls at once.
        self.clf = OnnxClassifier(Path(model_dir), threads=1, max_length=max_length, prefix=prefix, workers=threads)
        self.text_column, self.id_column = columns
        self.batch_size = batch_size
        self.sets = sets

    def __call__(self, batch):
        df = pl.from_arrow(batch).with_columns(pl.col("__row").cast(pl.Int64).alias(ORDER))
        return predict_part(self.clf, df, self.text_column, self.id_column, self.batch_size, self.sets).to_arrow()


def predict_file_ray(
    clf,
    model_dir: Path,
    input: Path,
    out_dir: Path,
    opts: RayOptions,
    text_column: str = "text",
    id_column: str = "id",
    part_rows: int = 10_000,
    batch_size: int = 1,
    on_part: Callable[[dict, int], None] | None = None,
    sets: SetOptions | None = None,
) -> dict:
    """`streaming.predict_file` with the parts labelled on Ray: same output, same manifest (engine "ray"), same
    resuming. `clf` is the driver's copy of the model (its hash names the output)."""
    ray = import_ray()
    kwargs = {
        "model_dir": str(model_dir.resolve()),
        "max_length": clf.max_length,
        "prefix": clf.prefix,
        "threads": opts.threads,
        "columns": (text_column, id_column),
        "batch_size": batch_size,
        "sets": sets,
    }

    def on_ray(parts: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        first = next(parts, None)
        if first is not None:
            tables = (df.to_arrow() for df in chain([first], parts))  # one part in this process at a time
            yield from next_rows(map_parts(ray, opts, tables, Predictor, kwargs, part_rows), first["__row"][0])

    return predict_file(
        clf, input, out_dir, text_column, id_column, part_rows, batch_size, on_part, ("ray", on_ray), sets
    )
