"""The `commentclf` command: check a configuration, run the pipeline through DVC.

The stages themselves live in `stages/` and run under `dvc repro` (which caches them); this command is
the user's front door to them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from commentclf.config import load_params
from commentclf.data import build_splits
from commentclf.stage import user_errors_exit

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


@app.command()
@user_errors_exit
def check(params: Path = typer.Option(Path("params.yaml"), help="params file to validate")) -> None:
    """Validate params.yaml and the data files it names, without writing anything."""
    cfg = load_params(params)
    result = build_splits(cfg.data, cfg.split, cfg.label_names)
    report = result.metrics(cfg.label_names)
    table = Table("file", "read", "empty", "truncated", "duplicates", "conflicts", "overlap", "kept")
    for name in ("labeled", "test", "pool"):
        if name in report:
            r = report[name]
            table.add_row(name, *(str(r[k]) for k in ("rows_read", "empty", "truncated", "duplicates",
                                                       "conflicting_labels", "overlap_removed", "kept")))
    console.print(table)
    console.print({name: counts for name, counts in report["split"].items()})
    console.print("[green]params and data are valid[/]")


@app.command()
def repro(stage: list[str] = typer.Argument(None, help="stage names; all stages when omitted")) -> None:
    """Run the pipeline (`dvc repro`), rebuilding only what changed."""
    raise typer.Exit(subprocess.call([sys.executable, "-m", "dvc", "repro", *(stage or [])]))


if __name__ == "__main__":
    app()
