"""Training curves as DVCLive logs, which `dvc plots show` / `dvc plots diff` draw (declared in dvc.yaml)."""

from __future__ import annotations

from pathlib import Path


def log_curve(folder: str | Path, rows: list[dict], step: str) -> None:
    """One DVCLive step per row (an epoch, a logged trainer step), its numbers as plot series; `step` names
    the row's key that gives the x value. Written after training from the history the library returns, so
    training code stays free of logging calls."""
    from dvclive import Live

    with Live(dir=str(folder), save_dvc_exp=False, dvcyaml=None) as live:
        for row in rows:
            live.step = int(row[step])
            for key, value in row.items():
                if key != step and isinstance(value, (int, float)) and not isinstance(value, bool):
                    live.log_metric(key, value)
            live.next_step()


def log_confusions(folder: str | Path, predictions: dict[str, tuple[list[str], list[str]]]) -> None:
    """Confusion matrices as DVCLive's sklearn plot data: folder/plots/sklearn/<model>.json for every
    model -> (gold, predicted)."""
    from dvclive import Live

    with Live(dir=str(folder), save_dvc_exp=False, dvcyaml=None) as live:
        for name, (gold, pred) in predictions.items():
            live.log_sklearn_plot("confusion_matrix", gold, pred, name=f"{name}.json")


def log_reliability(folder: str | Path, curves: dict[str, list[dict]]) -> None:
    """Reliability diagrams as plot data: folder/plots/reliability/<model>.json, a row per confidence bin
    (mean confidence, accuracy, rows), drawn by `dvc plots` against the diagonal of perfect calibration."""
    import json

    out = Path(folder) / "plots" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in curves.items():
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
