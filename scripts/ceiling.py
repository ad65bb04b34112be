"""The gold ceiling of a run: the student's own recipe (student.*) trained on the train split plus the TRUE
labels of every pool row the gold file covers, scored on the run's test split. It says how much a perfect
teacher could give; `scripts/report.py save` turns it into `ceiling_macro_f1` and `gap_recovered`.

A report, not a pipeline stage: it needs labels for the pool, which a real user does not have.

    python scripts/ceiling.py --run-dir DIR --out reports/ruw/ceiling.json
(DIR: the checkout that ran the pipeline, with its params.yaml, data/split and models/base.)
"""

from pathlib import Path

import numpy as np
import polars as pl
import typer
from rich.console import Console

from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import load_labeled, read_split
from commentclf.errors import DataError
from commentclf.evaluation.benchmark import bootstrap_ci
from commentclf.files import write_json
from commentclf.metrics import classification_report
from commentclf.seeding import seed_everything
from commentclf.student.model import predict_proba
from commentclf.student.train import TrainingSet, train_student


def main(
    run_dir: Path = typer.Option(..., help="checkout of the run (params.yaml, data/split, models/base)"),
    out: Path = typer.Option(..., help="where the ceiling's report (JSON) goes"),
) -> None:
    cfg = load_params(run_dir / "params.yaml")
    s, labels = cfg.student, cfg.label_names
    if not cfg.label.gold:
        raise DataError("label.gold is not set: the ceiling needs the true labels of the pool")
    seed_everything(cfg.seed)
    split = run_dir / "data" / "split"
    train, dev, test = (read_split(split, name) for name in ("train", "dev", "test"))
    pool = read_split(split, "pool")
    pool = pool.head(cfg.label.max_pool) if cfg.label.max_pool else pool
    truth, _ = load_labeled(run_dir / cfg.label.gold, cfg.data, labels)
    gold_pool = pool.join(truth.select("text", "label"), on="text", how="inner", maintain_order="left")
    rows = pl.concat([train.select("text", "label"), gold_pool.select("text", "label")])
    body = s.body or str(run_dir / read_manifest(run_dir / "models" / "base")["encoder"])
    data = TrainingSet(
        body,
        rows["text"].to_list(),
        rows["label"].to_list(),
        dev["text"].to_list(),
        dev["label"].to_list(),
        labels,
        cfg.minority_label,
    )
    result = train_student(data, s, cfg.seed)
    proba = predict_proba(result.model, result.tokenizer, test["text"].to_list(), s.prefix, s.max_length)
    gold, pred = test["label"].to_list(), [labels[i] for i in np.argmax(proba, 1)]
    report = classification_report(gold, pred, labels, cfg.minority_label)
    macro_ci, minority_ci = bootstrap_ci(gold, pred, labels, cfg.minority_label, cfg.benchmark.bootstrap, cfg.seed)
    write_json(
        out,
        {
            "recipe": "student.* on train split + true labels of the labelled pool rows (torch, fp32)",
            "rows": {"train": len(train), "gold_pool": len(gold_pool)},
            "best_epoch": result.best_epoch,
            "train_seconds": result.train_seconds,
            "dev": result.dev,
            "test": {**report, "macro_f1_ci": macro_ci, "minority_f1_ci": minority_ci},
        },
    )
    Console().print(f"ceiling on {len(test)} test rows: macro-F1 {report['macro_f1']:.3f} {macro_ci}")


if __name__ == "__main__":
    typer.run(main)
