"""The benchmark stage's work: every model on the same held-out test split (never used for any selection).

The models, each loaded from its stage's output: SetFit, the seed-only baselines, the LLM, the teachers'
ensemble, the torch student, and the ONNX students (fp32, the deployed int8 scheme and
`onnx.compare_schemes`, each under its own name). For each: quality with bootstrap intervals, latency at
batch 1 with 1 thread and with all threads, throughput, size on disk; each ONNX student is also started as
the server `commentclf serve` runs, for its start-up time and memory (the helpers are in `benchmark`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from commentclf.assets.encoders import load_embedder
from commentclf.assets.manifest import read_manifest
from commentclf.calibration import apply_calibration, calibration_report, fit_calibration, reliability_curve
from commentclf.config import Params
from commentclf.conformal import set_report
from commentclf.evaluation.benchmark import comparisons, hardware, latency_ms, model_entry, serve_footprint, throughput
from commentclf.files import size_mb
from commentclf.llm.head import load_llm
from commentclf.student.model import load_student, predict_proba
from commentclf.student.onnx_model import OnnxClassifier
from commentclf.student.vocab import coverage
from commentclf.teachers.cheap import score_teachers
from commentclf.teachers.ensemble import Ensemble
from commentclf.teachers.setfit import load_setfit, setfit_proba


@dataclass
class ModelFiles:
    """Where each stage left its model."""

    assets: Path
    setfit: Path
    llm: Path
    teachers: Path
    ensemble: Path
    seed_only: Path
    student: Path
    onnx: Path


@dataclass
class Contender:
    """One model under test: texts -> probabilities (torch models use the threads torch is set to), or, for an
    ONNX student, one session per thread count; how many single-text calls its latency takes; its size."""

    predict: Callable[[list[str]], np.ndarray] | None
    latency_runs: int
    size_mb: float
    onnx: dict[int, OnnxClassifier] | None = None
    folder: Path | None = None
    """An ONNX student's folder (the benchmark starts `serve` on it)."""
    uncalibrated: Callable[[list[str]], np.ndarray] | None = None
    """A model that ships its own calibration (the ensemble): its scores without it. The benchmark then
    reports the shipped calibration as it is, rather than fitting a temperature over it."""
    remote: bool = False
    """Served elsewhere (the llm_server teacher) and its answers cached: no latency, throughput or size here
    (its rows/s are in metrics/label.json)."""


def onnx_folders(cfg: Params, onnx_dir: Path) -> dict[str, Path]:
    """Model name -> folder: fp32, the deployed int8 (`int8/`, what predict and serve load), the compared schemes."""
    folders = {"student_onnx_fp32": onnx_dir / "fp32", deployed_name(cfg): onnx_dir / "int8"}
    return folders | {f"student_onnx_int8_{x}": onnx_dir / f"int8_{x}" for x in cfg.onnx.compare_schemes}


def deployed_name(cfg: Params) -> str:
    return f"student_onnx_int8_{cfg.onnx.scheme}"


def load_contenders(
    cfg: Params, files: ModelFiles, all_threads: int, server: Callable[[list[str]], np.ndarray] | None = None
) -> dict[str, Contender]:
    """Every model under test; `server` is the llm_server teacher when the ensemble lists it."""
    import joblib

    b, s, labels = cfg.benchmark, cfg.student, cfg.label_names
    setfit = load_setfit(files.setfit)
    llm = load_llm(files.llm, quantize=cfg.llm.quantize)
    ensemble = Ensemble.load(files.ensemble)
    fitted_teachers = joblib.load(files.teachers)
    manifest = read_manifest(files.assets)
    embed = load_embedder(manifest["encoder"], prefix=s.prefix)
    student, tokenizer = load_student(files.student)

    def setfit_p(batch):
        return setfit_proba(setfit, batch, cfg.setfit.prefix)

    def llm_p(batch):
        return llm.score(batch, cfg.llm.score_batch_size)

    def ensemble_p(batch, model=ensemble):
        probas = score_teachers(
            ensemble.teachers,
            batch,
            fitted_teachers,
            embed,
            {"setfit": setfit_p, "llm": llm_p, "llm_server": server},
            len(labels),
        )
        return model.predict_proba(probas)

    # the same pool of the same teachers, without their calibrations and the prior correction
    identity = {"temperature": 1.0, "bias": [0.0] * len(labels)}
    raw = replace(ensemble, calibration=dict.fromkeys(ensemble.teachers, identity), prior_bias=[0.0] * len(labels))

    def torch_p(model, tok):
        return lambda x: predict_proba(model, tok, x, s.prefix, s.max_length)

    # the ensemble's size: what it loads (the encoder for the cheap teachers, SetFit and the LLM if listed)
    ensemble_parts = [files.teachers, manifest["encoder"]] + [files.setfit] * ("setfit" in ensemble.teachers)
    ensemble_parts += [manifest["llm"], files.llm] * ("llm" in ensemble.teachers)
    contenders = {"setfit": Contender(setfit_p, b.latency_runs, size_mb(files.setfit))}
    for name in ("logreg", "finetune"):
        folder = files.seed_only / name
        contenders[f"seed_only_{name}"] = Contender(
            torch_p(*load_student(folder)), b.latency_runs, size_mb(folder / "model.safetensors")
        )
    contenders["llm"] = Contender(llm_p, b.llm_latency_runs, size_mb(manifest["llm"], files.llm))
    if server is not None:
        contenders["llm_server"] = Contender(server, 0, None, remote=True)
    ensemble_runs = b.llm_latency_runs if "llm" in ensemble.teachers else b.latency_runs
    contenders["ensemble"] = Contender(
        ensemble_p, ensemble_runs, size_mb(*ensemble_parts), uncalibrated=lambda x: ensemble_p(x, raw)
    )
    contenders["student_torch"] = Contender(
        torch_p(student, tokenizer), b.latency_runs, size_mb(files.student / "model.safetensors")
    )
    for name, folder in onnx_folders(cfg, files.onnx).items():
        sessions = {
            t: OnnxClassifier(folder, threads=t, max_length=s.max_length, prefix=s.prefix) for t in (1, all_threads)
        }
        contenders[name] = Contender(None, b.latency_runs, size_mb(sessions[1].file), sessions, folder)
    return contenders


@dataclass
class BenchmarkRows:
    """The test rows every model is measured on, and the calib rows (no model trained on them) a temperature is
    fitted on for the models that ship none (the ONNX students carry theirs, fitted on the same rows by
    onnx_export)."""

    texts: list[str]
    gold: list[str]
    calib_texts: list[str]
    calib_gold: list[str]


def calibration_entry(c: Contender, proba: np.ndarray, rows: BenchmarkRows, labels: list[str]) -> tuple[dict, list]:
    """The test rows' ECE, Brier and NLL before and after calibration, and the calibrated reliability curve.
    An ONNX student's scores are calibrated already (its temperature is undone for `before`), and so are the
    ensemble's (its teachers' calibrations and prior correction, fitted by llm_label); any other model gets a
    temperature fitted here on its scores of the calib rows."""
    gold = np.array([labels.index(y) for y in rows.gold])
    if c.onnx is not None:
        t = c.onnx[1].temperature
        before, after = apply_calibration(proba, {"temperature": 1 / t, "bias": [0.0] * len(labels)}), proba
        fitted = "calib, shipped in the model folder (onnx_export)"
    elif c.uncalibrated is not None:
        t, before, after = None, c.uncalibrated(rows.texts), proba
        fitted = "per teacher on out-of-fold seed rows, shipped in the ensemble (llm_label)"
    else:
        calib_gold = np.array([labels.index(y) for y in rows.calib_gold])
        fit = fit_calibration(c.predict(rows.calib_texts), calib_gold, "temperature")
        t, before, after, fitted = fit["temperature"], proba, apply_calibration(proba, fit), "calib (benchmark)"
    entry = {f"{k}_uncalibrated": v for k, v in calibration_report(before, gold).items()}
    entry |= calibration_report(after, gold) | {"temperature_fitted_on": fitted}
    if t is not None:  # the ensemble has one per teacher (models/ensemble.json), no single one
        entry["temperature"] = t
    return entry, reliability_curve(after, gold)


def run_benchmark(
    cfg: Params, contenders: dict[str, Contender], files: ModelFiles, params: Path, rows: BenchmarkRows
) -> tuple[dict, dict[str, np.ndarray], dict[str, list[dict]]]:
    """The report (the JSON that later tooling reads), each model's test probabilities (rows, labels; the
    scores its predictions are the argmax of) and its reliability curve (calibrated scores)."""
    import torch
    from rich.console import Console
    from transformers import AutoTokenizer

    b, labels, all_threads = cfg.benchmark, cfg.label_names, torch.get_num_threads()
    texts, gold = rows.texts, rows.gold
    deployed = deployed_name(cfg)
    report = {
        "test_size": len(texts),
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
    tokenizer = AutoTokenizer.from_pretrained(files.student)
    deployed_tokenizer = AutoTokenizer.from_pretrained(contenders[deployed].folder)
    if len(deployed_tokenizer) != len(tokenizer):  # onnx.trim_vocab: how the trimmed vocabulary covers test text
        report["vocab_coverage"] = coverage(tokenizer, deployed_tokenizer, texts, cfg.student.prefix)
    console = Console()
    predictions, probabilities, curves = {}, {}, {}
    for name, c in contenders.items():

        def with_threads(t, c=c):
            if c.predict is not None:
                torch.set_num_threads(t)
                return c.predict
            return c.onnx[t].predict_proba

        proba = with_threads(all_threads)(texts)
        if name == deployed:
            deployed_proba = proba  # its conformal sets below read the same scores
        pred = [labels[i] for i in proba.argmax(1)]
        lat, tput = None, None
        if not c.remote:
            lat = {}
            for t, suffix in ((1, "_1t"), (all_threads, "")):
                fn = with_threads(t)
                lat[f"p50_bs1{suffix}"], lat[f"p95_bs1{suffix}"] = latency_ms(
                    lambda x, fn=fn: fn([x]), texts, c.latency_runs
                )
            tput = throughput(with_threads(all_threads), texts, b.throughput_batch)
        entry = model_entry(gold, pred, labels, cfg.minority_label, b.bootstrap, cfg.seed, lat, tput, c.size_mb)
        torch.set_num_threads(all_threads)
        calibration, curves[name] = calibration_entry(c, proba, rows, labels)
        entry |= calibration
        if c.onnx is not None:
            entry["serve"] = serve_footprint(c.folder, params, texts[0])
        report["models"][name] = entry
        predictions[name], probabilities[name] = pred, proba
        console.print(
            f"{name}: macro-F1 {entry['macro_f1']:.3f}" + (f", p50 1t {lat['p50_bs1_1t']:.1f} ms" if lat else "")
        )
    torch.set_num_threads(all_threads)
    for name, c in contenders.items():  # the parity gate's measure, on the test texts
        if c.onnx is not None:
            same = np.mean([x == y for x, y in zip(predictions[name], predictions["student_torch"])])
            report["models"][name]["agreement_with_torch"] = float(same)
    report["comparisons"] = comparisons(report, predictions, gold, labels, cfg.minority_label, b.bootstrap, cfg.seed)
    report["conformal"] = conformal_entry(contenders[deployed], deployed_proba, rows, labels, b.conformal_alpha)
    return report, probabilities, curves


def conformal_entry(c: Contender, proba: np.ndarray, rows: BenchmarkRows, labels: list[str], alpha: float) -> dict:
    """The deployed model's conformal sets on the test rows (its scores `proba`; calibrated on the calib rows
    by onnx_export): coverage per class, the share of comments given a single label and those labels' accuracy."""
    clf = c.onnx[1]
    sets = clf.prediction_sets(proba, alpha)
    gold = np.array([labels.index(y) for y in rows.gold])
    return {"alpha": alpha, "calibration_rows": len(clf.conformal.labels), **set_report(sets, gold, labels)}
