"""Stage `benchmark`: every model on the same held-out test split (never used for any selection).

For each model: accuracy, macro-F1, per-class precision/recall/F1, 95 % bootstrap intervals of macro-F1
and minority F1; latency p50/p95 at batch 1 with 1 thread and with all threads, and throughput at batch
`benchmark.throughput_batch`, on real test texts after warm-up; size on disk. Writes
metrics/benchmark.json (the shape later tooling reads), metrics/benchmark.md, and confusion matrices as
dvc plots (plots/predictions/*.csv) and PNG (plots/confusion/*.png)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from commentclf.assets import read_manifest
from commentclf.benchmark import (
    confusion_png,
    dir_mb,
    hardware,
    latency_ms,
    markdown,
    model_entry,
    throughput,
)
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.ensemble import apply_calibration, gate
from commentclf.llm import LLMClassifier
from commentclf.metrics import write_json
from commentclf.onnx_export import OnnxClassifier
from commentclf.seeding import seed_everything
from commentclf.setfit_model import load_setfit, setfit_proba
from commentclf.stage import run
from commentclf.student import load_student, predict_proba


def main(
    params: Path = Path("params.yaml"),
    metrics: Path = Path("metrics/benchmark.json"),
    table: Path = Path("metrics/benchmark.md"),
    plots: Path = Path("plots"),
) -> None:
    cfg = load_params(params)
    b, s, labels = cfg.benchmark, cfg.student, cfg.label_names
    seed_everything(cfg.seed)
    test = read_split("test")
    texts, gold = test.text.tolist(), test.label.tolist()
    all_threads = torch.get_num_threads()
    label_report = json.loads(Path("metrics/label.json").read_text())

    setfit = load_setfit("models/setfit")
    llm = LLMClassifier.load("models/llm", quantize=cfg.llm.quantize)
    student, tokenizer = load_student("models/student")
    onnx = {
        name: {
            t: OnnxClassifier(f"models/onnx/{folder}", threads=t, max_length=s.max_length, prefix=s.prefix)
            for t in (1, all_threads)
        }
        for name, folder in (("fp32", "fp32"), ("int8", "int8"))
    }

    def ensemble(batch):  # the rule, weight and calibration that llm_label chose on dev
        calib = label_report["calibration"]
        ps = apply_calibration(setfit_proba(setfit, batch, cfg.setfit.prefix), calib["setfit"])
        pl = apply_calibration(llm.score(batch, cfg.llm.score_batch_size), calib["llm"])
        if label_report["rule"] == "gate":
            pred, _ = gate(ps, pl, labels.index(cfg.label.gate_label))
            return np.eye(len(labels))[pred]
        return (1 - label_report["soft_weight"]) * ps + label_report["soft_weight"] * pl

    base_llm = read_manifest()["llm"]
    models = {  # name -> (texts -> probabilities, uses torch threads, latency runs, size in MB)
        "setfit": (lambda x: setfit_proba(setfit, x, cfg.setfit.prefix), b.latency_runs, dir_mb("models/setfit")),
        "llm": (lambda x: llm.score(x, cfg.llm.score_batch_size), b.llm_latency_runs, dir_mb(base_llm, "models/llm")),
        "ensemble": (ensemble, b.llm_latency_runs, dir_mb("models/setfit", base_llm, "models/llm")),
        "student_torch": (
            lambda x: predict_proba(student, tokenizer, x, s.prefix, s.max_length),
            b.latency_runs,
            dir_mb("models/student/model.safetensors"),
        ),
        "student_onnx_fp32": (None, b.latency_runs, dir_mb(onnx["fp32"][1].file)),
        "student_onnx_int8": (None, b.latency_runs, dir_mb(onnx["int8"][1].file)),
    }
    report = {
        "test_size": len(test),
        "hardware": {
            **hardware(),
            "text_chars": float(np.mean([len(t) for t in texts])),
            "throughput_batch": b.throughput_batch,
            "bootstrap": b.bootstrap,
        },
        "models": {},
    }
    console = Console()
    (plots / "predictions").mkdir(parents=True, exist_ok=True)
    for name, (predict, runs, size) in models.items():

        def with_threads(t, predict=predict, name=name):
            if predict is not None:
                torch.set_num_threads(t)
                return predict
            return onnx[name.rsplit("_", 1)[1]][t].predict_proba

        pred = [labels[i] for i in with_threads(all_threads)(texts).argmax(1)]
        lat = {}
        for t, suffix in ((1, "_1t"), (all_threads, "")):
            fn = with_threads(t)
            lat[f"p50_bs1{suffix}"], lat[f"p95_bs1{suffix}"] = latency_ms(lambda x, fn=fn: fn([x]), texts, runs)
        tput = throughput(with_threads(all_threads), texts, b.throughput_batch)
        report["models"][name] = model_entry(
            gold, pred, labels, cfg.minority_label, b.bootstrap, cfg.seed, lat, tput, size
        )
        pd.DataFrame({"actual": gold, "predicted": pred}).to_csv(plots / "predictions" / f"{name}.csv", index=False)
        confusion_png(gold, pred, labels, f"{name} (test, n={len(gold)})", plots / "confusion" / f"{name}.png")
        console.print(f"{name}: macro-F1 {report['models'][name]['macro_f1']:.3f}, p50 1t {lat['p50_bs1_1t']:.1f} ms")
    torch.set_num_threads(all_threads)
    write_json(metrics, report)
    table.write_text(markdown(report, labels, cfg.minority_label), encoding="utf-8")
    console.print(table.read_text())


if __name__ == "__main__":
    run(main)
