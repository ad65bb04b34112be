"""Does `commentclf predict --input` stream in constant memory, and what does Ray cost? Rows/s and peak RSS
at several input sizes, for each engine setting.

    python scripts/bench_predict.py --source data/split/pool.parquet --rows 10000 --rows 100000 \
        --out reports/measurements/predict_streaming.json
    python scripts/bench_predict.py --source data/split/pool.parquet --rows 2000 --rows 10000 --repeat 3 \
        --setting local --setting ray:1x2 --setting ray:2x1 --part-rows 1000 \
        --out reports/measurements/predict_engines_parts.json
    python scripts/bench_predict.py --source ../shared/datasets/ruw/pool-rest.csv --rows 10000 --repeat 7 \
        --setting local --setting ray:1x2 --part-rows 1000 --model models/onnx/int8_hybrid \
        --out reports/measurements/ruw_predict_engines_paired.json          # in a checkout that ran the ruw profile
    python scripts/bench_predict.py --source data/split/pool.parquet --rows 10000 --rows 1000000 \
        --rows 3000000 --reader-only --out reports/measurements/predict_reader.json

Each size is a file of the source's texts repeated, labelled by `commentclf predict` in its own process.
Settings: `local` (the default: one model call per CPU at once), `local:W` (W calls at once; `local:1` is
one call at a time on all of onnxruntime's threads), `ray:AxT` (A actors of T threads on a local Ray of A*T
CPUs). Peak RSS is the process's high-water mark as it exits (VmHWM); `tree_peak_rss_mb` samples the whole
process tree (Ray's raylet and workers are children of the driver) twice a second, and `cpu_seconds` the CPU
each of its processes used, by role (driver, raylet, gcs_server, ray::Predictor, ray::_StatsActor, ...): where
a Ray run's extra time goes. Writes one JSON with the hardware.

`--repeat K` runs every setting K times per size, interleaved and in alternating order (local, Ray, Ray,
local, ...), because on a shared 2-core machine the same run varies by a quarter from one minute to the next:
only runs made side by side compare, and `paired_overhead` gives each Ray setting's mean ratio to its local
neighbour with a 95 % t-interval over the pairs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import typer

from commentclf.evaluation.benchmark import hardware

# The child's own peak RSS is VmHWM (/proc/self/status, KiB), which exec resets. Not ru_maxrss: Linux carries
# it over from the forked copy of this parent, so a child would report the parent's size (its input frame).
PEAK = (
    "print('PEAK_RSS_KB', [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0], "
    "file=sys.stderr)"
)

# run in a child: the CLI, then its own peak RSS on stderr, whatever the exit code
CHILD = f"""
import sys
from commentclf.cli import app
try:
    app(sys.argv[1:])
finally:
    {PEAK}
"""


# the input side alone: every part of the file read as predict reads it, then the peak RSS
READER = f"""
import sys
from pathlib import Path
from commentclf.data import table_rows
from commentclf.inference.streaming import input_parts
path, part_rows = Path(sys.argv[1]), int(sys.argv[2])
assert sum(len(part) for part in input_parts(path, 0, part_rows)) == table_rows(path)
{PEAK}
"""


def process_role(proc, root_pid: int) -> str:
    """A short name for a process of the run's tree: the driver, a Ray daemon (raylet, gcs_server, a .py
    monitor) or a Ray worker by the title Ray gives it (ray::Predictor, ray::_StatsActor, ray::IDLE, ...)."""
    if proc.pid == root_pid:
        return "driver"
    args = proc.cmdline() or [proc.name()]
    if args[0].startswith("ray::"):
        return args[0].split()[0]
    script = next((Path(a).name for a in args if a.endswith(".py")), None)
    return script or Path(args[0]).name


def sample_tree(pid: int, stop: threading.Event, peak: list[float], cpu: dict[str, float]) -> None:
    """Twice a second: the tree's total RSS (its peak into `peak[0]`) and each process's CPU seconds since the
    last sample, added to `cpu` under its current role (a Ray worker changes title as it takes tasks). CPU a
    process spends after its last sample (it exits between two) is not counted."""
    import psutil

    seen: dict[int, float] = {}
    while not stop.is_set():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                    times = proc.cpu_times()
                    used = times.user + times.system
                    role = process_role(proc, pid)
                except psutil.Error:
                    continue
                cpu[role] = cpu.get(role, 0.0) + used - seen.get(proc.pid, 0.0)
                seen[proc.pid] = used
            peak[0] = max(peak[0], total / 2**20)
        except psutil.Error:
            pass
        stop.wait(0.5)


def run_measured(cmd: list[str], cwd: Path | None = None, env: dict | None = None):
    """Run `cmd`; (returncode, stdout, stderr, seconds, peak MB of its process tree, CPU seconds by role)."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, tree_peak, cpu = threading.Event(), [0.0], {}
    sampler = threading.Thread(target=sample_tree, args=(child.pid, stop, tree_peak, cpu))
    sampler.start()
    stdout, stderr = child.communicate()
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - start
    cpu = {role: round(s, 1) for role, s in sorted(cpu.items(), key=lambda kv: -kv[1]) if s >= 0.05}
    return child.returncode, stdout, stderr, seconds, tree_peak[0], cpu


def engine_overhead(results: list[dict], size: str, seconds: str) -> dict:
    """Each Ray setting against `local`, from runs at two or more input sizes: a straight line of seconds over
    rows per setting splits the cost into a fixed part (start-up: Ray, the actors, their models) and a part per
    row; the overhead is the difference of each, and the whole-run ratio at the largest size."""
    fits = {}
    for how in {r["setting"] for r in results}:
        points = sorted((r[size], r[seconds]) for r in results if r["setting"] == how)
        if len({n for n, _ in points}) >= 2:  # a line needs two sizes; repeats of one size do not make one
            slope, fixed = np.polyfit([n for n, _ in points], [t for _, t in points], 1)
            fits[how] = {"fixed_s": float(fixed), "per_row_ms": 1000 * float(slope), "largest": points[-1]}
    if "local" not in fits:
        return {}
    local = fits["local"]
    return {
        how: {
            "fixed_seconds": round(fit["fixed_s"], 1),
            "fixed_seconds_more_than_local": round(fit["fixed_s"] - local["fixed_s"], 1),
            "per_row_ms": round(fit["per_row_ms"], 2),
            "per_row_overhead": round(fit["per_row_ms"] / local["per_row_ms"] - 1, 3),
            f"overhead_at_{fit['largest'][0]}_rows": round(fit["largest"][1] / local["largest"][1] - 1, 3),
        }
        for how, fit in sorted(fits.items())
    }


def paired_overhead(results: list[dict], size: str = "rows", seconds: str = "seconds") -> dict:
    """Each Ray setting against the local run of the same size and repeat: the mean of seconds(Ray) /
    seconds(local) - 1 over the repeats, with a 95 % t-interval (pairs, not runs, are the unit: the machine's
    drift is shared within a pair)."""
    from scipy import stats

    local = {(r[size], r["repeat"]): r[seconds] for r in results if r["setting"] == "local"}
    out = {}
    for how in sorted({r["setting"] for r in results} - {"local"}):
        for n in sorted({r[size] for r in results}):
            ratios = [
                r[seconds] / local[n, r["repeat"]] - 1
                for r in results
                if r["setting"] == how and r[size] == n and (n, r["repeat"]) in local
            ]
            if len(ratios) < 2:
                continue
            mean, sem = float(np.mean(ratios)), float(stats.sem(ratios))
            half = float(stats.t.ppf(0.975, len(ratios) - 1)) * sem
            out[f"{how}@{n}"] = {
                "pairs": len(ratios),
                "overheads": [round(x, 3) for x in ratios],
                "mean": round(mean, 3),
                "ci95": [round(mean - half, 3), round(mean + half, 3)],
            }
    return out


def interleaved(settings: list[str], repeat: int):
    """(repeat, setting) in the order runs are made: each setting once per repeat, the order reversed on odd
    repeats (local, Ray, Ray, local, ...) so neither always runs first on a machine whose speed drifts."""
    for k in range(repeat):
        for how in settings if k % 2 == 0 else settings[::-1]:
            yield k, how


def engine_args(setting: str) -> list[str]:
    if setting == "local":
        return []
    if setting.startswith("local:"):
        return ["--workers", setting.removeprefix("local:")]
    actors, threads = setting.removeprefix("ray:").split("x")
    cpus = int(actors) * int(threads)
    return ["--engine", "ray", "--actors", actors, "--threads", threads, "--num-cpus", str(cpus)]


def main(
    source: Path = typer.Option(..., help="parquet or CSV with a text column"),
    rows: list[int] = typer.Option(..., help="input sizes to measure"),
    out: Path = typer.Option(..., help="JSON report"),
    model: Path = typer.Option(Path("models/onnx/int8")),
    params: Path = typer.Option(Path("params.yaml")),
    part_rows: int = typer.Option(10_000),
    setting: list[str] = typer.Option(
        ["local"], help="local, local:W (W model calls at once), or ray:AxT (A actors of T threads)"
    ),
    reader_only: bool = typer.Option(False, help="only read the inputs (CSV and parquet) as predict does: no model"),
    repeat: int = typer.Option(1, min=1, help="runs of each setting per size, interleaved in alternating order"),
) -> None:
    texts = pl.read_parquet(source) if source.suffix == ".parquet" else pl.read_csv(source, infer_schema=False)
    texts = texts["text"].to_list()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in rows:
            data = Path(tmp) / f"in_{n}.parquet"
            frame = pl.DataFrame({"id": range(n), "text": [texts[i % len(texts)] for i in range(n)]})
            frame.write_parquet(data)
            if reader_only:
                frame.write_csv(data.with_suffix(".csv"))
                for kind in ("csv", "parquet"):
                    cmd = [sys.executable, "-c", READER, str(data.with_suffix(f".{kind}")), str(part_rows)]
                    returncode, _, stderr, seconds, _, _ = run_measured(cmd)
                    if returncode:
                        raise SystemExit(f"reading {kind} failed on {n} rows:\n{stderr[-2000:]}")
                    peak_kb = int(stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
                    results.append(
                        {
                            "setting": f"reader:{kind}",
                            "rows": n,
                            "seconds": round(seconds, 1),
                            "peak_rss_mb": round(peak_kb / 1024, 1),
                        }
                    )
                    print(json.dumps(results[-1]), flush=True)
                continue
            for k, how in interleaved(setting, repeat):
                target = Path(tmp) / f"out_{n}"
                cmd = [sys.executable, "-c", CHILD, "predict", "--input", str(data), "--output", str(target)]
                cmd += ["--model", str(model), "--params", str(params), "--part-rows", str(part_rows)]
                returncode, _, stderr, seconds, tree_peak, cpu = run_measured([*cmd, *engine_args(how)])
                if returncode:
                    raise SystemExit(f"predict ({how}) failed on {n} rows:\n{stderr[-2000:]}")
                peak_kb = int(stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
                labelled = pl.scan_parquet(str(target / "*.parquet")).select(pl.len()).collect().item()
                assert labelled == n, (labelled, n)
                results.append(
                    {
                        "setting": how,
                        "rows": n,
                        "repeat": k,
                        "seconds": round(seconds, 1),
                        "rows_per_s": round(n / seconds, 1),
                        "peak_rss_mb": round(peak_kb / 1024, 1),
                        "tree_peak_rss_mb": round(tree_peak, 1),
                        "cpu_seconds": cpu,
                    }
                )
                print(json.dumps(results[-1]), flush=True)
                shutil.rmtree(target)
    report = {
        "what": "commentclf predict --input (streamed, parquet parts), one process per size and setting"
        + ("; reader:* = the input side alone (streaming.input_parts), no model" if reader_only else ""),
        "model": str(model),
        "part_rows": part_rows,
        "batch_size": 1,
        "mean_text_chars": round(sum(map(len, texts)) / len(texts), 1),
        "hardware": hardware(),
        "results": results,
        "engine_overhead": engine_overhead(results, "rows", "seconds"),
        "paired_overhead": paired_overhead(results) if repeat > 1 else {},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
