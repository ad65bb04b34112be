"""llm_label's row scoring on Ray (`label.engine: ray`): `scoring.score_rows` with the parts scored by a
pool of RowScoring actors (commentclf.ray_engine), the rows back checked (each exactly once) and in input
order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from commentclf.errors import DataError
from commentclf.ray_engine import ORDER, RayOptions, import_ray, map_parts, next_rows


class RowScoring:
    """One actor: llm_label's RowScorer (e5 and the model teachers), loaded once, scoring Arrow batches."""

    def __init__(self, cfg, encoder: str, setfit_dir: str, llm_dir: str, threads: int):
        from commentclf.teachers.scoring import RowScorer

        self.scorer = RowScorer(cfg, encoder, Path(setfit_dir), Path(llm_dir), threads)

    def __call__(self, batch):
        df = pl.from_arrow(batch)
        scores = self.scorer(df["text"].to_list(), df["needs_models"].to_numpy())
        columns = [pl.Series(name, values) for name, values in scores.items()]  # 2-D arrays become Array columns
        return pl.DataFrame([df["__row"].cast(pl.Int64).alias(ORDER), *columns]).to_arrow()


def score_rows_ray(
    cfg, encoder: str, setfit_dir: Path, llm_dir: Path, texts: list[str], needs_models, opts: RayOptions
) -> dict:
    """`scoring.score_rows` on Ray: the same parts of `cfg.label.part_rows` rows, scored by `opts.actors`
    RowScoring actors; the rows come back checked (each exactly once) and in input order."""
    ray = import_ray()
    part_rows = cfg.label.part_rows
    rows = pl.DataFrame({"__row": np.arange(len(texts)), "text": texts, "needs_models": np.asarray(needs_models)})
    parts = [rows.slice(start, part_rows).to_arrow() for start in range(0, len(texts), part_rows)]
    kwargs = {
        "cfg": cfg,
        "encoder": str(Path(encoder).resolve()) if Path(encoder).exists() else encoder,  # a folder, or a hub id
        "setfit_dir": str(Path(setfit_dir).resolve()),
        "llm_dir": str(Path(llm_dir).resolve()),
        "threads": opts.threads,
    }
    results = map_parts(ray, opts, parts, RowScoring, kwargs, part_rows)
    scored = pl.concat(list(next_rows(results, 0)))
    if len(scored) != len(texts):
        raise DataError(f"Ray returned {len(scored)} scored rows for {len(texts)}; run the stage again")
    return {name: scored[name].to_numpy() for name in scored.columns}
