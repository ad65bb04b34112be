"""Stage `split`: validate the labelled seed, the pool and the optional test file, clean them, and write
stratified train / dev / test splits plus the pool (with stable ids) as parquet.

Every row that is dropped or changed is counted in the metrics file.
"""

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from commentclf.config import load_params
from commentclf.data import build_splits, write_splits
from commentclf.files import write_json
from commentclf.stage import run


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    out_dir: Path = typer.Option(..., help="folder of train/dev/test/pool.parquet"),
    metrics: Path = typer.Option(..., help="row counts (JSON)"),
) -> None:
    cfg = load_params(params)
    result = build_splits(cfg.data, cfg.split, cfg.label_names)
    write_splits(result, out_dir)
    report = result.metrics(cfg.label_names)
    write_json(metrics, report)

    table = Table("split", "rows", *cfg.label_names, title=f"split -> {out_dir}")
    for name, counts in report["split"].items():
        table.add_row(name, str(counts["rows"]), *(str(counts[label]) for label in cfg.label_names))
    table.add_row("pool", str(report["pool_rows"]), *([""] * len(cfg.label_names)))
    Console().print(table)


if __name__ == "__main__":
    run(main)
