"""GPU path check, run by hand on a CUDA machine (never in CI). Three steps, each in its own process so
that the peft step sees transformers / trl / peft without unsloth's patches:

1. `unsloth`: the real `llm_finetune` stage with `backend: unsloth, quantize: 4bit` (QLoRA as in the
   original) on the SmolLM2 folder; the stage evaluates the adapter on dev in both prediction modes.
2. `qlora_peft`: the `llm_finetune` stage with `backend: peft, quantize: 4bit` (bitsandbytes NF4).
3. `peft_load`: a fresh process that never imports unsloth loads the unsloth adapter (else step 2's) under
   the peft backend and evaluates dev again, on the 4-bit base it was trained on and on the bf16 base with
   the LoRA merged.

    pip install -e '.[gpu]'                  # CUDA hosts only: the gpu extra pulls torchvision
    dvc repro split assets                   # models/base/llm and data/split
    python scripts/gpu_check.py --out gpu_check

Writes <out>/<step>.json (the stage's metrics file) and <out>/summary.json, and prints the summary.
`--no-require-cuda --epochs 0.05` runs the peft steps on CPU: how the plumbing is tested before a GPU
session is spent on it.
"""

import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

import typer
import yaml

STEPS = ("unsloth", "qlora_peft", "peft_load")  # run order: peft_load needs a trained adapter
BASE = "models/base/llm"  # the outputs of `dvc repro split assets`
SPLIT = "data/split"
PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "unsloth", "unsloth_zoo", "accelerate")


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def stage_params(params: Path, out: Path, step: str, backend: str, epochs: float | None) -> Path:
    """params.yaml with the step's backend, 4-bit quantisation and the SmolLM2 folder as the model."""
    cfg = yaml.safe_load(params.read_text())
    cfg["llm"].update({"model": BASE, "backend": backend, "quantize": "4bit"})
    if epochs is not None:
        cfg["llm"]["epochs"] = epochs
    path = out / f"params_{step}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


def run_step(step: str, cmd: list[str], out: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (out / f"{step}.log").write_text(proc.stdout + proc.stderr)
    result = {"rc": proc.returncode, "wall_seconds": round(time.perf_counter() - start, 1)}
    if proc.returncode:
        result["error_tail"] = (proc.stdout + proc.stderr)[-3000:]
    print(f"[gpu_check] {step}: rc {proc.returncode} in {result['wall_seconds']} s", flush=True)
    return result


def digest(metrics: dict) -> dict:
    """The figures worth reading from a step's metrics file (the file itself keeps everything)."""
    ev = metrics.get("dev", metrics)
    keep = {k: metrics[k] for k in ("backend", "train_seconds", "steps", "first_loss", "last_loss") if k in metrics}
    return keep | {
        "dev_macro_f1": {mode: round(ev[mode]["macro_f1"], 3) for mode in ("score", "generate")},
        "dev_minority_f1": {mode: round(ev[mode]["minority_f1"], 3) for mode in ("score", "generate")},
        "parse_failure_rate": ev["parse"]["failure_rate"],
        "score_generate_agreement": ev["score_generate_agreement"],
        "ms_per_comment": ev["ms_per_comment"],
        **{k: metrics[k] for k in ("unsloth_imported", "device", "peak_gpu_mb") if k in metrics},
    }


def peft_load(adapter: Path, params: Path, metrics: Path) -> None:
    """Step 2, in its own process: evaluate an adapter under the peft backend (no unsloth import)."""
    import torch

    from commentclf.config import load_params
    from commentclf.data import most_frequent, read_split
    from commentclf.files import write_json
    from commentclf.llm.classifier import LLMClassifier
    from commentclf.llm.evaluate import evaluate_llm

    cfg = load_params(params)
    train, dev = read_split(SPLIT, "train"), read_split(SPLIT, "dev")
    fallback = cfg.llm.fallback_label or most_frequent(train["label"].to_list())
    reports = {}
    # The adapter was trained on a 4-bit base: score it on that base, and on the bf16 base with LoRA merged.
    for quantize in ("4bit", "none"):
        clf = LLMClassifier.load(adapter, BASE, quantize=quantize)
        report = evaluate_llm(clf, dev["text"].to_list(), dev["label"].to_list(), cfg.minority_label, fallback, cfg.llm)
        report["unsloth_imported"] = "unsloth" in sys.modules
        report["device"] = str(clf.device)
        if torch.cuda.is_available():
            report["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        reports[f"base_{quantize}"] = report
        del clf
    write_json(metrics, reports)


def main(
    out: Path = typer.Option(Path("gpu_check"), help="folder for the metrics, logs and adapters"),
    params: Path = typer.Option(Path("params.yaml"), help="base params; the llm backend/quantize/model are set here"),
    steps: str = typer.Option(",".join(STEPS), help="comma-separated subset of: " + ", ".join(STEPS)),
    epochs: float = typer.Option(None, help="override llm.epochs (e.g. 0.05 for a plumbing check on CPU)"),
    require_cuda: bool = typer.Option(True, help="refuse to run without a CUDA device"),
    peft_load_adapter: Path = typer.Option(None, hidden=True, help="internal: run step 2 in this process"),
    peft_load_metrics: Path = typer.Option(None, hidden=True),
) -> None:
    if peft_load_adapter is not None:
        peft_load(peft_load_adapter, params, peft_load_metrics)
        return

    import torch

    if require_cuda and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device; this script checks the GPU path (use --no-require-cuda for plumbing)")
    out.mkdir(parents=True, exist_ok=True)
    wanted = [s.strip() for s in steps.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(STEPS))
    if unknown:
        sys.exit(f"gpu_check: unknown steps {unknown}; choose from {list(STEPS)}")

    summary = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "versions": versions(),
        "steps": {},
    }
    adapters = {"unsloth": out / "adapter_unsloth", "qlora_peft": out / "adapter_qlora_peft"}
    for step in (s for s in STEPS if s in wanted):
        metrics = out / f"{step}.json"
        if step == "peft_load":
            adapter = next((a for a in adapters.values() if (a / "commentclf.json").is_file()), None)
            if adapter is None:
                summary["steps"][step] = {"rc": None, "skipped": "no adapter trained by an earlier step"}
                continue
            cmd = [sys.executable, __file__, "--params", str(params)]
            cmd += ["--peft-load-adapter", str(adapter), "--peft-load-metrics", str(metrics)]
            result = run_step(step, cmd, out) | {"adapter": str(adapter)}
        else:
            backend = "unsloth" if step == "unsloth" else "peft"
            p = stage_params(params, out, step, backend, epochs)
            cmd = [sys.executable, "stages/llm_finetune.py", "--params", str(p), "--assets", "models/base"]
            cmd += ["--split-dir", SPLIT, "--synthetic", "data/synthetic.parquet", "--live-dir", str(out / step)]
            cmd += ["--out-dir", str(adapters[step]), "--metrics", str(metrics)]
            result = run_step(step, cmd, out)
        if metrics.is_file():
            found = json.loads(metrics.read_text())
            if step == "peft_load":
                result["digest"] = {name: digest(report) for name, report in found.items()}
            else:
                result["digest"] = digest(found)
        summary["steps"][step] = result
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    typer.run(main)
