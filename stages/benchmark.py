"""Stage `benchmark`: every model on the same held-out test split (never used for any selection).

For each model: accuracy, macro-F1, per-class precision/recall/F1, 95 % bootstrap intervals of macro-F1
and minority F1; latency p50/p95 at batch 1 with 1 thread and with all threads, and throughput at batch
`benchmark.throughput_batch`, on real test texts after warm-up; size on disk. Each ONNX student (fp32, the
deployed int8 scheme and `onnx.compare_schemes`, each under its own name) is also started as `commentclf
serve` to measure start-up time and resident memory. Writes the report as JSON
(the shape later tooling reads) and markdown, and the confusion matrices as DVCLive plots."""

from pathlib import Path

import joblib
import numpy as np
import torch
import typer
from rich.console import Console
from transformers import AutoTokenizer

from commentclf.benchmark import (
    comparisons,
    hardware,
    latency_ms,
    markdown,
    model_entry,
    serve_footprint,
    throughput,
)
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.encoders import load_embedder
from commentclf.ensemble import Ensemble
from commentclf.files import size_mb, write_json
from commentclf.llm.head import load_llm
from commentclf.manifest import read_manifest
from commentclf.onnx_model import OnnxClassifier
from commentclf.seeding import seed_everything
from commentclf.setfit_model import load_setfit, setfit_proba
from commentclf.stage import run
from commentclf.student import load_student, predict_proba
from commentclf.teachers import score_teachers
from commentclf.tracking import log_confusions
from commentclf.vocab import coverage


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
    live_dir: Path = typer.Option(..., help="DVCLive folder of the confusion matrices"),
) -> None:
    cfg = load_params(params)
    b, s, labels = cfg.benchmark, cfg.student, cfg.label_names
    seed_everything(cfg.seed)
    test = read_split(split_dir, "test")
    texts, gold = test["text"].to_list(), test["label"].to_list()
    all_threads = torch.get_num_threads()

    setfit = load_setfit(setfit_dir)
    llm = load_llm(llm_dir, quantize=cfg.llm.quantize)
    ensemble = Ensemble.load(ensemble_file)
    fitted_teachers = joblib.load(teachers_file)
    embed = load_embedder(read_manifest(assets)["encoder"], prefix=s.prefix)
    student, tokenizer = load_student(student_dir)
    baselines = {name: load_student(seed_only_dir / name) for name in ("logreg", "finetune")}
    # model name -> folder: fp32, the deployed int8 (`int8/`, what predict and serve load) and the compared schemes
    onnx_dirs = {"student_onnx_fp32": onnx_dir / "fp32", f"student_onnx_int8_{cfg.onnx.scheme}": onnx_dir / "int8"}
    onnx_dirs |= {f"student_onnx_int8_{x}": onnx_dir / f"int8_{x}" for x in cfg.onnx.compare_schemes}
    onnx = {
        name: {t: OnnxClassifier(folder, threads=t, max_length=s.max_length, prefix=s.prefix) for t in (1, all_threads)}
        for name, folder in onnx_dirs.items()
    }
    deployed = f"student_onnx_int8_{cfg.onnx.scheme}"

    def setfit_p(batch):
        return setfit_proba(setfit, batch, cfg.setfit.prefix)

    def llm_p(batch):
        return llm.score(batch, cfg.llm.score_batch_size)

    def ensemble_p(batch):
        probas = score_teachers(
            ensemble.teachers, batch, fitted_teachers, embed, {"setfit": setfit_p, "llm": llm_p}, len(labels)
        )
        return ensemble.predict_proba(probas)

    base_llm = read_manifest(assets)["llm"]
    encoder = read_manifest(assets)["encoder"]
    # the ensemble's size: what it loads (the encoder for the cheap teachers, SetFit and the LLM if listed)
    ensemble_parts = [teachers_file, encoder] + [setfit_dir] * ("setfit" in ensemble.teachers)
    ensemble_parts += [base_llm, llm_dir] * ("llm" in ensemble.teachers)

    def seed_only_p(name):
        model, tok = baselines[name]
        return lambda x: predict_proba(model, tok, x, s.prefix, s.max_length)

    models = {  # name -> (texts -> probabilities, or None for ONNX; latency runs; size in MB)
        "setfit": (setfit_p, b.latency_runs, size_mb(setfit_dir)),
        "seed_only_logreg": (
            seed_only_p("logreg"),
            b.latency_runs,
            size_mb(seed_only_dir / "logreg/model.safetensors"),
        ),
        "seed_only_finetune": (
            seed_only_p("finetune"),
            b.latency_runs,
            size_mb(seed_only_dir / "finetune/model.safetensors"),
        ),
        "llm": (llm_p, b.llm_latency_runs, size_mb(base_llm, llm_dir)),
        "ensemble": (
            ensemble_p,
            b.llm_latency_runs if "llm" in ensemble.teachers else b.latency_runs,
            size_mb(*ensemble_parts),
        ),
        "student_torch": (
            lambda x: predict_proba(student, tokenizer, x, s.prefix, s.max_length),
            b.latency_runs,
            size_mb(student_dir / "model.safetensors"),
        ),
        **{name: (None, b.latency_runs, size_mb(sessions[1].file)) for name, sessions in onnx.items()},
    }
    report = {
        "test_size": len(test),
        "minority_label": cfg.minority_label,
        "deployed": deployed,  # what `commentclf predict` and `serve` load by default
        "hardware": {
            **hardware(),
            "text_chars": float(np.mean([len(t) for t in texts])),
            "throughput_batch": b.throughput_batch,
            "bootstrap": b.bootstrap,
        },
        "models": {},
    }
    deployed_tokenizer = AutoTokenizer.from_pretrained(onnx_dirs[deployed])
    if len(deployed_tokenizer) != len(tokenizer):  # onnx.trim_vocab: how the trimmed vocabulary covers test text
        report["vocab_coverage"] = coverage(tokenizer, deployed_tokenizer, texts, s.prefix)
    console = Console()
    predictions = {}
    for name, (predict, runs, size) in models.items():

        def with_threads(t, predict=predict, name=name):
            if predict is not None:
                torch.set_num_threads(t)
                return predict
            return onnx[name][t].predict_proba

        pred = [labels[i] for i in with_threads(all_threads)(texts).argmax(1)]
        lat = {}
        for t, suffix in ((1, "_1t"), (all_threads, "")):
            fn = with_threads(t)
            lat[f"p50_bs1{suffix}"], lat[f"p95_bs1{suffix}"] = latency_ms(lambda x, fn=fn: fn([x]), texts, runs)
        tput = throughput(with_threads(all_threads), texts, b.throughput_batch)
        report["models"][name] = model_entry(
            gold, pred, labels, cfg.minority_label, b.bootstrap, cfg.seed, lat, tput, size
        )
        if name in onnx_dirs:
            report["models"][name]["serve"] = serve_footprint(onnx_dirs[name], params, texts[0])
        predictions[name] = pred
        console.print(f"{name}: macro-F1 {report['models'][name]['macro_f1']:.3f}, p50 1t {lat['p50_bs1_1t']:.1f} ms")
    torch.set_num_threads(all_threads)
    for name in onnx:  # the parity gate's measure, on the test texts
        same = np.mean([a == b for a, b in zip(predictions[name], predictions["student_torch"])])
        report["models"][name]["agreement_with_torch"] = float(same)
    report["comparisons"] = comparisons(report, predictions, gold, labels, cfg.minority_label, b.bootstrap, cfg.seed)
    write_json(metrics, report)
    log_confusions(live_dir, {name: (gold, pred) for name, pred in predictions.items()})
    table.write_text(markdown(report, labels, cfg.minority_label), encoding="utf-8")
    console.print(table.read_text())


if __name__ == "__main__":
    run(main)
