"""Stage `benchmark`: every model on the same held-out test split (never used for any selection).

For each model: accuracy, macro-F1, per-class precision/recall/F1, 95 % bootstrap intervals of macro-F1
and minority F1; latency p50/p95 at batch 1 with 1 thread and with all threads, and throughput at batch
`benchmark.throughput_batch`, on real test texts after warm-up; size on disk. Each ONNX student (fp32, the
deployed int8 scheme and `onnx.compare_schemes`) is also started as the server `commentclf serve` runs, to
measure start-up time and resident memory; and each model's calibration on test, before and after its
temperature (commentclf.evaluation.runner). Writes the report as JSON (the shape later tooling reads) and
markdown, and the confusion matrices and reliability curves as `dvc plots`."""

from pathlib import Path

import torch
import typer
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.evaluation.benchmark import markdown, predictions_table
from commentclf.evaluation.runner import BenchmarkRows, ModelFiles, load_contenders, run_benchmark
from commentclf.files import write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.teachers.server import AnswerCache, server_teacher
from commentclf.tracking import log_confusions, log_reliability


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    setfit_dir: Path = typer.Option(..., help="SetFit model"),
    llm_dir: Path = typer.Option(..., help="LoRA adapter of the LLM classifier"),
    teachers_file: Path = typer.Option(..., help="the fitted cheap teachers (llm_label)"),
    ensemble_file: Path = typer.Option(..., help="the fitted ensemble (llm_label)"),
    seed_only_dir: Path = typer.Option(..., help="folder of the seed-only baselines (seed_only)"),
    student_dir: Path = typer.Option(..., help="the torch student"),
    onnx_dir: Path = typer.Option(..., help="folder of the fp32/ and int8/ ONNX students"),
    metrics: Path = typer.Option(..., help="the report (JSON)"),
    table: Path = typer.Option(..., help="the report as a markdown table"),
    predictions: Path = typer.Option(..., help="every model's test probabilities (parquet, no text)"),
    live_dir: Path = typer.Option(..., help="DVCLive folder of the confusion matrices"),
    server_cache: Path = typer.Option(..., help="the llm_server teacher's answers to test and calib rows (SQLite)"),
) -> None:
    cfg = load_params(params)
    seed_everything(cfg.seed)
    test, calib = read_split(split_dir, "test"), read_split(split_dir, "calib")
    rows = BenchmarkRows(
        test["text"].to_list(), test["label"].to_list(), calib["text"].to_list(), calib["label"].to_list()
    )
    files = ModelFiles(assets, setfit_dir, llm_dir, teachers_file, ensemble_file, seed_only_dir, student_dir, onnx_dir)
    AnswerCache(server_cache).close()  # a DVC output kept across runs: it exists, empty, when no server teaches
    server = None
    if "llm_server" in cfg.label.teachers:  # the same k-shot examples as llm_label's, from the same train rows
        train = read_split(split_dir, "train")
        server = server_teacher(train["text"].to_list(), train["label"].to_list(), cfg, server_cache)
    contenders = load_contenders(cfg, files, torch.get_num_threads(), server)
    report, probabilities, curves = run_benchmark(cfg, contenders, files, params, rows)
    write_json(metrics, report)
    predictions_table(test["id"].to_list(), rows.gold, probabilities, cfg.label_names).write_parquet(predictions)
    pred = {name: [cfg.label_names[i] for i in p.argmax(1)] for name, p in probabilities.items()}
    log_confusions(live_dir, {name: (rows.gold, labels) for name, labels in pred.items()})
    log_reliability(live_dir, curves)
    table.write_text(markdown(report, cfg.label_names, cfg.minority_label), encoding="utf-8")
    Console().print(table.read_text())


if __name__ == "__main__":
    run(main)
