"""Reports of named runs and the README's Results tables.

python scripts/report.py save demo               # metrics/ of this checkout -> reports/demo/
python scripts/report.py save ruw --run-dir DIR --profile ruw --wall-seconds 3494
python scripts/report.py readme                  # rewrite the README's tables from reports/
python scripts/report.py readme --check          # exit 1 when the README is out of date
python scripts/report.py compare ruw ruw/loop300  # two saved runs, model by model -> reports/ruw/loop300/compare.md
"""

from pathlib import Path

import typer

from commentclf.evaluation.reports import compare_table, render_readme, save_report

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
REPO = Path(__file__).resolve().parents[1]


@app.command()
def save(
    dataset: str,
    run_dir: Path = typer.Option(REPO, help="the checkout whose metrics/ the run wrote"),
    profile: str = typer.Option(None, help="the profile the run used (profiles/NAME.yaml)"),
    wall_seconds: float = typer.Option(None, help="how long the whole run took (recorded in run.json)"),
) -> None:
    """Copy a finished run's metrics into reports/DATASET/ with its commit and profile."""
    run = save_report(run_dir, REPO / "reports" / dataset, profile, wall_seconds)
    print(f"reports/{dataset}: {run}")


@app.command()
def compare(base: str, other: str) -> None:
    """Compare two saved runs on their common models; writes reports/OTHER/compare.md and prints it."""
    table = compare_table(REPO / "reports" / base, REPO / "reports" / other)
    (REPO / "reports" / other / "compare.md").write_text(f"# {other} against {base}\n\n{table}")
    print(table)


@app.command()
def readme(check: bool = typer.Option(False, help="only check that README.md matches the reports")) -> None:
    """Regenerate the README's Results tables from reports/."""
    path = REPO / "README.md"
    old = path.read_text()
    new = render_readme(old, REPO / "reports")
    if check:
        raise typer.Exit(0 if new == old else 1)
    path.write_text(new)


if __name__ == "__main__":
    app()
