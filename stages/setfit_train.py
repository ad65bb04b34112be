"""Stage `setfit`: the few-shot baseline. A sentence-transformer body fine-tuned contrastively on train
pairs + a class-balanced logistic head whose C is chosen on dev. Saves the model, its dev metrics and
the training curve (DVCLive).

(This file is not called setfit.py: as the script's own folder comes first on sys.path, that name
would shadow the setfit package.)"""

import time
from pathlib import Path

import typer
from rich.console import Console

from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.files import write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.teachers.setfit import train_setfit
from commentclf.tracking import log_curve


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    out_dir: Path = typer.Option(..., help="where the SetFit model is saved"),
    metrics: Path = typer.Option(..., help="dev metrics (JSON)"),
    live_dir: Path = typer.Option(..., help="DVCLive folder of the training curve"),
) -> None:
    cfg = load_params(params)
    seed_everything(cfg.seed)
    train, dev = read_split(split_dir, "train"), read_split(split_dir, "dev")
    body = cfg.setfit.body or read_manifest(assets)["encoder"]
    start = time.perf_counter()
    _, dev_report, steps = train_setfit(
        body,
        train["text"].to_list(),
        train["label"].to_list(),
        dev["text"].to_list(),
        dev["label"].to_list(),
        cfg.label_names,
        cfg.minority_label,
        cfg.setfit,
        cfg.seed,
        out_dir,
    )
    report = {
        "dev": dev_report,
        "train_rows": len(train),
        "train_seconds": round(time.perf_counter() - start, 1),
        "body": body,
    }
    write_json(metrics, report)
    log_curve(live_dir, steps, step="step")
    Console().print(
        f"setfit dev macro-F1 {dev_report['macro_f1']:.3f}, "
        f"{cfg.minority_label} F1 {dev_report['minority_f1']:.3f} (n={dev_report['n']})"
    )


if __name__ == "__main__":
    run(main)
