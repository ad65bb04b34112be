"""Measurement helpers of the benchmark stage: bootstrap intervals, latency, throughput, hardware, report."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from commentclf.metrics import classification_report


def bootstrap_ci(
    y_true: list[str], y_pred: list[str], labels: list[str], minority: str, n: int, seed: int
) -> tuple[list[float], list[float]]:
    """95 % percentile intervals of macro-F1 and minority-class F1 over `n` resamples of the test rows
    (scipy's bootstrap, rows resampled as (gold, prediction) pairs)."""
    from scipy.stats import bootstrap

    t = np.array([labels.index(y) for y in y_true])
    p = np.array([labels.index(y) for y in y_pred])
    index = list(range(len(labels)))

    def ci(scored: list[int]) -> list[float]:
        def f1(gold, pred):
            return f1_score(gold, pred, labels=scored, average="macro", zero_division=0)

        res = bootstrap(
            (t, p),
            f1,
            paired=True,
            vectorized=False,
            n_resamples=n,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        return [float(res.confidence_interval.low), float(res.confidence_interval.high)]

    return ci(index), ci([labels.index(minority)])


def paired_difference(
    y_true: list[str], pred_a: list[str], pred_b: list[str], labels: list[str], minority: str, n: int, seed: int
) -> dict:
    """Model A minus model B on the same test rows: the macro-F1 and minority-F1 differences, each with a
    95 % paired bootstrap interval (every resample draws the same rows for both models, so the interval is
    of the difference itself, narrower than two separate intervals suggest). A model against itself is 0."""
    t = np.array([labels.index(y) for y in y_true])
    a = np.array([labels.index(y) for y in pred_a])
    b = np.array([labels.index(y) for y in pred_b])
    scored = {"macro_f1": list(range(len(labels))), "minority_f1": [labels.index(minority)]}

    def diff(rows: np.ndarray, which: list[int]) -> float:
        f1 = lambda p: f1_score(t[rows], p[rows], labels=which, average="macro", zero_division=0)  # noqa: E731
        return float(f1(a) - f1(b))

    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, len(t), size=(n, len(t)))
    everything = np.arange(len(t))
    out = {}
    for name, which in scored.items():
        boot = np.array([diff(rows, which) for rows in resamples])
        out[name] = diff(everything, which)
        out[f"{name}_ci"] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
    return out


def predictions_table(ids: list[str], gold: list[str], probabilities: dict[str, np.ndarray], labels: list[str]):
    """Every model's test probabilities, one row per (model, test row): id (the text's hash, never the text),
    the true label, the predicted label and `proba_<label>`. Two runs on the same test set are compared row by
    row from these files (`scripts/report.py compare`: paired intervals)."""
    import polars as pl

    parts = [
        pl.DataFrame(
            {
                "model": [name] * len(ids),
                "id": ids,
                "label": gold,
                "predicted": [labels[i] for i in proba.argmax(1)],
                **{f"proba_{label}": proba[:, j].astype(np.float32) for j, label in enumerate(labels)},
            }
        )
        for name, proba in probabilities.items()
    ]
    return pl.concat(parts)


def comparisons(report: dict, predictions: dict[str, list[str]], gold: list[str], labels, minority, n, seed) -> dict:
    """The deployed student (int8 ONNX) against SetFit, against the best seed-only model (the highest test
    macro-F1 among SetFit and the seed_only_* baselines: the strongest comparison, not a tuned one) and against
    the teachers' ensemble it learned from (a student that only copies its teachers lands at zero)."""
    deployed = report["deployed"]
    seed_only = [m for m in report["models"] if m == "setfit" or m.startswith("seed_only_")]
    if deployed not in predictions or not seed_only:
        return {}
    best = max(seed_only, key=lambda m: report["models"][m]["macro_f1"])
    out = {"deployed": deployed, "best_seed_only": best}
    for other in dict.fromkeys(["setfit", best, "ensemble"]):
        if other in predictions:
            out[f"{deployed} - {other}"] = paired_difference(
                gold, predictions[deployed], predictions[other], labels, minority, n, seed
            )
    return out


def latency_ms(
    predict_one: Callable[[str], object], texts: list[str], runs: int, warmup: int = 3
) -> tuple[float, float]:
    """p50 and p95 of single-text calls on real texts, after `warmup` untimed calls."""
    for text in texts[:warmup]:
        predict_one(text)
    times = []
    for i in range(runs):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        predict_one(text)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def throughput(predict_many: Callable[[list[str]], object], texts: list[str], batch: int) -> float:
    """Texts per second over at least one batch (repeating texts if there are fewer than a batch)."""
    sample = (texts * (batch // max(1, len(texts)) + 1))[: max(batch, len(texts))]
    predict_many(sample[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(sample), batch):
        predict_many(sample[i : i + batch])
    return len(sample) / (time.perf_counter() - start)


def _rss_mb(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_mb": round(kb["VmRSS"] / 1024, 1), "peak_rss_mb": round(kb["VmHWM"] / 1024, 1)}


def serve_footprint(model_dir: Path, params: Path, text: str, timeout_s: float = 180) -> dict:
    """Start the server that `commentclf serve` runs (commentclf.inference.serve) on a free local port as its own
    process, as a deployment would: seconds until /health answers (imports + model load), then resident and peak
    memory after one /predict."""
    from commentclf.inference import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", serve.__name__, "--model", str(model_dir), "--params", str(params)]
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                if proc.poll() is not None or time.perf_counter() - start > timeout_s:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"`commentclf serve --model {model_dir}` did not start:\n{tail}")
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.05)
            startup_s = time.perf_counter() - start
            body = json.dumps({"text": text}).encode()
            request = urllib.request.Request(f"{url}/predict", body, {"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=30).read()
            return {"startup_s": round(startup_s, 2), **_rss_mb(proc.pid)}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def hardware() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import torch

    return {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "all_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def model_entry(
    gold: list[str],
    pred: list[str],
    labels: list[str],
    minority: str,
    n_boot: int,
    seed: int,
    latency: dict | None,
    throughput_per_s: float | None,
    size_mb: float | None,
) -> dict:
    """Quality with intervals, and speed and size; None where the model is served elsewhere (llm_server)."""
    r = classification_report(gold, pred, labels, minority)
    macro_ci, minority_ci = bootstrap_ci(gold, pred, labels, minority, n_boot, seed)
    return {
        "accuracy": r["accuracy"],
        "macro_f1": r["macro_f1"],
        "macro_f1_ci": macro_ci,
        "minority_f1": r["minority_f1"],
        "minority_f1_ci": minority_ci,
        "f1": r["f1"],
        "precision": r["precision"],
        "recall": r["recall"],
        "latency_ms": latency,
        "throughput_per_s": throughput_per_s,
        "size_mb": size_mb,
    }


def paired_rows(pairs: dict[str, dict]) -> list[str]:
    """Markdown rows of paired differences: name | macro-F1 difference [CI] | minority-F1 difference [CI]."""
    return [
        f"| {name} | {d['macro_f1']:+.3f} [{d['macro_f1_ci'][0]:+.3f}, {d['macro_f1_ci'][1]:+.3f}] "
        f"| {d['minority_f1']:+.3f} [{d['minority_f1_ci'][0]:+.3f}, {d['minority_f1_ci'][1]:+.3f}] |"
        for name, d in pairs.items()
    ]


def markdown(report: dict, labels: list[str], minority: str) -> str:
    hw = report["hardware"]
    lines = [
        f"# Benchmark on the test split ({report['test_size']} comments)",
        "",
        f"Hardware: {hw['cpu']}, {hw['logical_cores']} logical cores; torch {hw['torch']}, onnxruntime "
        f"{hw['onnxruntime']}. Latency: one comment per call (batch 1), p50/p95 over real test texts "
        f"(mean {hw['text_chars']:.0f} characters) after warm-up, with 1 thread and with all "
        f"{hw['all_threads']} threads; throughput: lists of {hw['throughput_batch']} comments with all threads "
        "(the ONNX students take them one at a time, as `predict` and `serve` do). "
        f"Intervals: 95 % bootstrap ({hw['bootstrap']} resamples).",
        "",
        f"| model | accuracy | macro-F1 [95 % CI] | {minority} F1 [95 % CI] | p50 / p95 ms, 1 thread | "
        "p50 / p95 ms, all threads | comments/s (batch) | size MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        lat = m["latency_ms"]
        size = "n/a" if m["size_mb"] is None else f"{m['size_mb']:.1f}"
        speed = (
            f"{lat['p50_bs1_1t']:.1f} / {lat['p95_bs1_1t']:.1f} | {lat['p50_bs1']:.1f} / {lat['p95_bs1']:.1f} "
            f"| {m['throughput_per_s']:.1f}"
            if lat
            else "served | served | see label.json"
        )
        lines.append(
            f"| {name} | {m['accuracy']:.3f} "
            f"| {m['macro_f1']:.3f} [{m['macro_f1_ci'][0]:.2f}, {m['macro_f1_ci'][1]:.2f}] "
            f"| {m['minority_f1']:.3f} [{m['minority_f1_ci'][0]:.2f}, {m['minority_f1_ci'][1]:.2f}] "
            f"| {speed} | {size} |"
        )
    lines += ["", "Per-class F1:", "", "| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name, m in report["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m['f1'][label]:.3f}" for label in labels) + " |")
    calibrated = {name: m for name, m in report["models"].items() if "ece" in m}
    if calibrated:
        lines += [
            "",
            "Calibration on the test split, before → after each model's temperature (fitted on dev rows; the ONNX "
            "students ship theirs, the ensemble its teachers' calibrations): expected calibration error (15 bins), "
            "Brier score, negative log-likelihood:",
            "",
            "| model | temperature | ECE | Brier | NLL |",
            "|---|---|---|---|---|",
        ]
        for name, m in calibrated.items():
            cells = [f"{m[f'{k}_uncalibrated']:.3f} → {m[k]:.3f}" for k in ("ece", "brier", "nll")]
            t = f"{m['temperature']:.2f}" if "temperature" in m else "shipped"
            lines.append(f"| {name} | {t} | " + " | ".join(cells) + " |")
    deployment = {name: m for name, m in report["models"].items() if "serve" in m}
    if deployment:
        torch_m = report["models"].get("student_torch", {})
        lines += [
            "",
            f"ONNX students (deployed: {report['deployed']}), against student_torch "
            f"({torch_m.get('size_mb', float('nan')):.1f} MB, p50 1 thread "
            f"{torch_m.get('latency_ms', {}).get('p50_bs1_1t', float('nan')):.1f} ms); agreement = same argmax as "
            "student_torch on the test texts; serve = `commentclf serve` start-up until /health answers, resident "
            "and peak memory after one request:",
            "",
            "| model | size MB | × smaller | p50 ms 1 thread | × faster | p50 ms all threads | comments/s | macro-F1 "
            "| agreement | serve start s | serve RSS / peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in deployment.items():
            p50 = m["latency_ms"]["p50_bs1_1t"]
            lines.append(
                f"| {name} | {m['size_mb']:.1f} | {torch_m.get('size_mb', float('nan')) / m['size_mb']:.1f} "
                f"| {p50:.1f} | {torch_m.get('latency_ms', {}).get('p50_bs1_1t', float('nan')) / p50:.2f} "
                f"| {m['latency_ms']['p50_bs1']:.1f} | {m['throughput_per_s']:.1f} | {m['macro_f1']:.3f} "
                f"| {m['agreement_with_torch']:.3f} | {m['serve']['startup_s']:.1f} "
                f"| {m['serve']['rss_mb']:.0f} / {m['serve']['peak_rss_mb']:.0f} |"
            )
    if report.get("conformal"):
        c = report["conformal"]
        accuracy = "n/a" if c["singleton_accuracy"] is None else f"{c['singleton_accuracy']:.3f}"
        lines += [
            "",
            f"Conformal sets of {report['deployed']} at alpha {c['alpha']:g} (class-conditional, calibrated on "
            f"{c['calibration_rows']} dev rows): coverage on test per class, the share of comments given a single "
            "label and its accuracy, the mean set size:",
            "",
            "| " + " | ".join(c["coverage"]) + " | single label | its accuracy | mean set size |",
            "|---" * (len(c["coverage"]) + 3) + "|",
            "| "
            + " | ".join(f"{v:.3f}" for v in c["coverage"].values())
            + f" | {c['singleton_share']:.3f} | {accuracy} | {c['mean_set_size']:.2f} |",
        ]
    pairs = {k: v for k, v in report.get("comparisons", {}).items() if isinstance(v, dict)}
    if pairs:
        lines += [
            "",
            "Paired differences (same test rows resampled for both models; 95 % paired bootstrap):",
            "",
            f"| comparison | macro-F1 difference [95 % CI] | {minority} F1 difference [95 % CI] |",
            "|---|---|---|",
        ]
        lines += paired_rows(pairs)
    if report.get("ceiling_macro_f1") is not None:
        lines += [
            "",
            f"Gold ceiling (the student's recipe on the seed + the true labels of the pool): macro-F1 "
            f"{report['ceiling_macro_f1']:.3f}; gap recovered by the deployed student: {report['gap_recovered']:.2f}.",
        ]
    return "\n".join(lines) + "\n"
