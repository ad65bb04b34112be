"""The student's quality/latency curve over `student.layers`: one `dvc exp run -S student.layers=K` per K in a
checkout that has run the pipeline (e5_train, onnx_export and benchmark rerun; everything upstream is reused),
then the workspace is put back to the run's own value by one more `dvc exp run`. DVC's run cache should
restore that without training, but it has been seen to retrain the full student (cause not found);
`--no-restore` skips the step when the checkout is scratch.

    python scripts/layers_sweep.py --run-dir /path/to/run --layers 6 --layers 9 --out reports/ruw/layers.json

Per K: the torch student and the deployed int8 model from the benchmark stage (size, p50 at batch 1 with 1
thread and with all threads, throughput, test macro-F1 with its interval), the parity gate's agreement, the
training time, and the paired macro-F1 difference of the deployed model against the run's own deployed model
(same test rows, paired bootstrap). A K whose export fails the parity gate is reported with the stage's error.

`--merge` adds the new K to an existing report instead of rewriting it: the points of the K not rerun stay as
they were measured (each point names the commit of its run and the torch latency its speed-up is taken
against), which is sound only when the report's reference is the same model; the script checks that the
run's own student gives the report's reference scores and refuses otherwise.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import typer
import yaml
from rich.console import Console

from commentclf.config import load_params
from commentclf.evaluation.benchmark import paired_difference


def dvc_exp_run(run_dir: Path, layers: int | None, extra: list[str]) -> subprocess.CompletedProcess:
    value = "null" if layers is None else str(layers)
    cmd = ["dvc", "exp", "run", "-S", f"student.layers={value}", *(arg for kv in extra for arg in ("-S", kv))]
    return subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True)


def measure(run_dir: Path) -> dict:
    """What the workspace's last benchmark says of the torch student and the deployed model."""
    bench = json.loads((run_dir / "metrics/benchmark.json").read_text())
    onnx = json.loads((run_dir / "metrics/onnx.json").read_text())
    student = json.loads((run_dir / "metrics/student.json").read_text())
    config = json.loads((run_dir / "models/student/config.json").read_text())
    deployed = bench["deployed"]
    point = {"layers": config["num_hidden_layers"], "train_seconds": student["train_seconds"], "deployed": deployed}
    for role, name in (("torch", "student_torch"), ("int8", deployed)):
        m = bench["models"][name]
        point[role] = {
            "size_mb": m["size_mb"],
            "p50_ms_1_thread": round(m["latency_ms"]["p50_bs1_1t"], 2),
            "p50_ms_all_threads": round(m["latency_ms"]["p50_bs1"], 2),
            "throughput_per_s": round(m["throughput_per_s"], 1),
            "macro_f1": m["macro_f1"],
            "macro_f1_ci": m["macro_f1_ci"],
            "minority_f1": m["minority_f1"],
        }
    point["int8"]["gate_agreement"] = onnx["int8_vs_torch"]["argmax_agreement"]
    point["int8"]["test_agreement"] = onnx["int8_vs_torch"].get("test_argmax_agreement")
    confusion = run_dir / "dvclive/benchmark/plots/sklearn" / f"{deployed}.json"
    rows = json.loads(confusion.read_text())  # the test rows in order: (actual, predicted)
    point["gold"], point["predicted"] = [r["actual"] for r in rows], [r["predicted"] for r in rows]
    return point


def kept_points(out: Path, overrides: list[str], reference: dict, rerun: set[int]) -> list[dict]:
    """The points of an earlier report to keep beside this sweep's: those of the K not rerun, when the report
    was made with the same overrides and its reference is this run's model (same test scores)."""
    if not out.exists():
        return []
    old = json.loads(out.read_text())
    if old["overrides"] != overrides:
        raise typer.BadParameter(f"{out} was made with --set {old['overrides']}, not {overrides}: rerun every K")
    old_ref = next((p for p in old["points"] if p["layers"] == reference["layers"]), None)
    if old_ref is None or "int8" not in old_ref:
        raise typer.BadParameter(f"{out} has no measured {reference['layers']}-layer reference: rerun every K")
    for role in ("torch", "int8"):
        if old_ref[role]["macro_f1"] != reference[role]["macro_f1"]:
            raise typer.BadParameter(
                f"{out}'s reference {role} student scored macro-F1 {old_ref[role]['macro_f1']:.4f}, this run's "
                f"{reference[role]['macro_f1']:.4f}: not the same model, rerun every K"
            )
    return [p for p in old["points"] if p["layers"] not in rerun]


def main(
    run_dir: Path = typer.Option(..., help="checkout that has run the pipeline (dvc repro / make exp)"),
    layers: list[int] = typer.Option(..., help="values of student.layers to try"),
    out: Path = typer.Option(..., help="JSON report"),
    set_: list[str] = typer.Option(
        [], "--set", help="more KEY=VALUE overrides for every point, e.g. onnx.scheme=blockwise"
    ),
    restore: bool = typer.Option(True, help="put the workspace back to the run's own student.layers afterwards"),
    merge: bool = typer.Option(False, help="keep the points of `out` for the K not rerun (same reference model)"),
) -> None:
    console = Console()
    cfg = load_params(run_dir / "params.yaml")
    original = cfg.student.layers
    raw = yaml.safe_load((run_dir / "params.yaml").read_text())

    def value_of(key: str):  # the run's own value of a dotted key, to put back after the sweep
        node = raw
        for part in key.split("."):
            node = node[part]
        return node

    # JSON is YAML, which is how `dvc exp run -S` parses a value
    put_back = [f"{kv.split('=', 1)[0]}={json.dumps(value_of(kv.split('=', 1)[0]))}" for kv in set_]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=run_dir, capture_output=True, text=True).stdout.strip()
    points = [measure(run_dir)]
    reference = points[0]
    kept = kept_points(out, set_, reference, {*layers, reference["layers"]}) if merge else []
    try:
        for k in layers:
            console.print(f"student.layers={k}: dvc exp run …")
            proc = dvc_exp_run(run_dir, k, set_)
            if proc.returncode:  # e.g. the parity gate: onnx_export wrote its report, then failed the stage
                errors = [
                    line for line in (proc.stdout + proc.stderr).splitlines() if "ERROR" in line or "rror:" in line
                ]
                onnx = json.loads((run_dir / "metrics/onnx.json").read_text())
                points.append(
                    {
                        "layers": k,
                        "failed": " / ".join(errors[-2:]) or (proc.stdout + proc.stderr)[-300:],
                        "failed_export": {"size_mb": onnx["size_mb"], "int8_vs_torch": onnx["int8_vs_torch"]},
                    }
                )
                continue
            points.append(measure(run_dir))
    finally:
        restored = dvc_exp_run(run_dir, original, put_back) if restore else None
        if restored is not None and restored.returncode:
            console.print(f"[red]could not restore student.layers={original}:[/] {restored.stderr[-500:]}")
    labels, minority = cfg.label_names, cfg.minority_label
    for p in points:
        if "predicted" in p:
            p["int8"]["vs_reference"] = paired_difference(
                reference["gold"], p["predicted"], reference["predicted"], labels, minority, 1000, cfg.seed
            )
    torch_ref = reference["torch"]  # the yardstick: the full student in torch, timed in the same run
    for p in points:
        p["run_commit"] = commit
        if "int8" in p:
            i = p["int8"]
            i["reference_torch_p50_ms_1_thread"] = torch_ref["p50_ms_1_thread"]
            i["speedup_vs_reference_torch"] = round(torch_ref["p50_ms_1_thread"] / i["p50_ms_1_thread"], 2)
            i["shrink_vs_reference_torch"] = round(torch_ref["size_mb"] / i["size_mb"], 1)
    test_rows = len(reference["gold"])
    for p in points:
        p.pop("gold", None), p.pop("predicted", None)
    points += kept
    report = {
        "what": "student.layers sweep: dvc exp run per value; test = the run's test split",
        "overrides": set_,
        "reference": f"the run's own student ({reference['layers']} layers)",
        "test_rows": test_rows,
        "points": sorted(points, key=lambda p: p["layers"]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for p in report["points"]:
        if "failed" in p:
            console.print(f"{p['layers']:>2} layers: failed: {p['failed']}")
            continue
        i, d = p["int8"], p["int8"]["vs_reference"]
        console.print(
            f"{p['layers']:>2} layers: int8 {i['size_mb']} MB, p50 {i['p50_ms_1_thread']} ms (1t), "
            f"macro-F1 {i['macro_f1']:.3f}, Δ vs reference {d['macro_f1']:+.3f} "
            f"[{d['macro_f1_ci'][0]:+.3f}, {d['macro_f1_ci'][1]:+.3f}], gate {i['gate_agreement']:.3f}"
        )


if __name__ == "__main__":
    typer.run(main)
