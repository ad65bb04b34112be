"""Stage `prevalence`: how much of the pool is each class, with 95 % intervals, and on the test split, whose
truth is known, how far each method lands from it.

The deployed student (int8, calibrated) scores the calib, test and pool rows. The calib rows are seed rows no
model trained on (the teachers that labelled the student's pool saw train and dev, so the student's dev scores
are optimistic). With `prevalence.method: auto` the method is chosen on the calib rows alone (shifted samples,
commentclf.quantification.choose_method); the adjusted methods' misclassification rates come from them too, and
each interval bootstraps over the calib rows and the measured ones. Every method but classify-and-count reads
the scores recalibrated on the calib rows (`prevalence.recalibrate`). On test, every method (classify-and-count
among them) is scored against the true shares, and the labels of the EMQ posteriors (`commentclf prevalence
--adjust-prior`) against the plain argmax.
"""

import os
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.files import write_json
from commentclf.quantification import HeldOut, split_markdown, split_prevalence
from commentclf.stage import run
from commentclf.student.onnx_model import OnnxClassifier


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    model_dir: Path = typer.Option(..., help="the deployed ONNX student (onnx_export's int8/)"),
    metrics: Path = typer.Option(..., help="the report (JSON)"),
    table: Path = typer.Option(..., help="the report as markdown"),
) -> None:
    cfg = load_params(params)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    clf = OnnxClassifier(model_dir, max_length=cfg.student.max_length, prefix=cfg.student.prefix, workers=workers)

    def scored(name: str) -> HeldOut:
        rows = read_split(split_dir, name)
        y = np.array([clf.labels.index(label) for label in rows["label"]])
        return HeldOut(clf.predict_proba(rows["text"].to_list()), y, cfg.prevalence.recalibrate == "bcts")

    pool = clf.predict_proba(read_split(split_dir, "pool")["text"].to_list())
    report = split_prevalence(
        scored("calib"), scored("test"), pool, clf.labels, cfg.minority_label, cfg.prevalence, cfg.seed
    )
    write_json(metrics, report)
    table.write_text(split_markdown(report), encoding="utf-8")
    Console().print(table.read_text(), markup=False)


if __name__ == "__main__":
    run(main)
