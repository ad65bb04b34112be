"""Stage `seed_only`: the baselines the distillation has to beat, trained on exactly the student's seed rows
(the train split, best epoch on dev) and nothing else.

* `logreg`: frozen e5 embeddings + class-balanced logistic regression (student.mode `head`): cheap and
  strong on a few hundred rows.
* `finetune`: the student's own recipe (student.*) without a single pool row.
Both are saved as ordinary student folders, so the benchmark scores them like the student."""

from pathlib import Path

import typer
from rich.console import Console

from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.files import write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.student.train import TrainingSet, frozen_head_baseline, train_student


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    out_dir: Path = typer.Option(..., help="where logreg/ and finetune/ are saved"),
    metrics: Path = typer.Option(..., help="dev metrics and training time of both (JSON)"),
) -> None:
    cfg = load_params(params)
    s = cfg.student
    seed_everything(cfg.seed)
    train, dev = read_split(split_dir, "train"), read_split(split_dir, "dev")
    body = s.body or read_manifest(assets)["encoder"]
    data = TrainingSet(
        body,
        train["text"].to_list(),
        train["label"].to_list(),
        dev["text"].to_list(),
        dev["label"].to_list(),
        cfg.label_names,
        cfg.minority_label,
    )
    results = {
        "logreg": frozen_head_baseline(data, s, cfg.seed, out_dir / "logreg"),
        "finetune": train_student(data, s.model_copy(update={"mode": "finetune"}), cfg.seed, out_dir / "finetune"),
    }
    report = {
        name: {"dev": r.dev, "train_seconds": r.train_seconds, "best_epoch": r.best_epoch}
        for name, r in results.items()
    }
    report["train_rows"] = len(train)
    write_json(metrics, report)
    Console().print({name: round(r.dev["macro_f1"], 3) for name, r in results.items()})


if __name__ == "__main__":
    run(main)
