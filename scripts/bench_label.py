"""`llm_label` on each engine setting, in a checkout that has run the pipeline: wall time, rows scored per
second, peak RSS of the whole process tree (Ray's raylet and actors included), and whether the pseudo-labels
equal the first setting's (argmax exactly, probabilities within 1e-5).

    python scripts/bench_label.py --run-dir /path/to/run --setting local --setting ray:1x2 --setting ray:2x1 \
        --max-pool 500 --max-pool 0 --out reports/measurements/ruw_label_engines.json
    python scripts/bench_label.py --run-dir . --pool ../shared/datasets/ruw/pool-rest.csv --setting local \
        --setting ray:1x2 --setting ray:2x1 --max-pool 1000 --repeat 2 \
        --out reports/measurements/label_engines_parts.json
    python scripts/bench_label.py --run-dir . --pool ../shared/datasets/ruw/pool-rest.csv --setting local \
        --setting ray:1x2 --setting ray:2x1 --max-pool 0 --repeat 2 --part-rows 256 \
        --out reports/measurements/label_engines_pool.json

`--pool FILE` labels that file's texts as the pool instead of the run's split (a scratch split folder with
the run's train/dev/test); the outputs are thrown away, so it may hold texts that are never trained on.
`--times K` repeats those texts K times, for a run long enough to show what Ray costs per row rather than
per run.
With two or more pool sizes (`--max-pool`, 0 = the whole pool) the report splits each Ray setting's overhead
into a fixed start-up cost and a cost per row (bench_predict.engine_overhead). `--repeat K` runs each setting K
times per size, interleaved as bench_predict does, and pairs each Ray run with its local neighbour
(`paired_overhead`, on the scoring seconds); `cpu_seconds` says which processes of the tree used the CPU.

Each setting runs this checkout's stage (stages/llm_label.py, src/) in a child process on a copy of the run's
params with `label.engine` (and for `ray:AxT`, A actors of T threads) changed, and `label` keys that the run's
params lack (a run made before they existed) taken from this checkout's params.yaml; its outputs go to a
scratch folder, never the run's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import polars.selectors as cs
import typer
import yaml

# scripts/ is on sys.path when a script runs
from bench_predict import engine_overhead, interleaved, paired_overhead, run_measured

from commentclf.data import read_table
from commentclf.evaluation.benchmark import hardware

REPO = Path(__file__).resolve().parents[1]


def run_stage(run_dir: Path, params: Path, out: Path, split_dir: Path) -> tuple[float, float, dict]:
    """(seconds, peak MB of the process tree, CPU seconds by process role) of one llm_label run."""
    cmd = [sys.executable, str(REPO / "stages/llm_label.py"), "--params", str(params), "--assets", "models/base"]
    cmd += ["--split-dir", str(split_dir), "--setfit-dir", "models/setfit", "--llm-dir", "models/llm"]
    cmd += ["--teachers-out", str(out / "teachers.joblib"), "--ensemble-out", str(out / "ensemble.json")]
    cmd += ["--out", str(out / "pseudo.parquet"), "--recipe-out", str(out / "recipe.json")]
    cmd += ["--seed-oof", str(out / "seed_oof.parquet"), "--metrics", str(out / "label.json")]
    cmd += ["--server-cache", str(out / "llm_server_cache.sqlite")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    returncode, stdout, stderr, seconds, peak, cpu = run_measured(cmd, run_dir, env)
    if returncode:
        raise SystemExit(f"llm_label failed:\n{(stdout + stderr)[-3000:]}")
    return seconds, peak, cpu


def main(
    run_dir: Path = typer.Option(..., help="checkout that has run the pipeline up to llm_label"),
    setting: list[str] = typer.Option(["local"], help="local, or ray:AxT (A actors of T threads)"),
    out: Path = typer.Option(..., help="JSON report"),
    max_pool: list[int] = typer.Option([0], help="pool rows to label (label.max_pool); 0: the whole pool"),
    pool: Path | None = typer.Option(None, help="CSV or parquet whose `text` column is the pool to label"),
    repeat: int = typer.Option(1, min=1, help="runs of each setting per pool size, interleaved in alternating order"),
    part_rows: int = typer.Option(None, min=1, help="label.part_rows for every setting (default: the run's)"),
    times: int = typer.Option(1, min=1, help="the --pool file's texts this many times over (a longer run)"),
) -> None:
    if times > 1 and pool is None:
        raise typer.BadParameter("--times repeats the texts of a --pool file; give --pool")
    base = yaml.safe_load((run_dir / "params.yaml").read_text())
    for key, value in yaml.safe_load((REPO / "params.yaml").read_text())["label"].items():
        base["label"].setdefault(key, value)
    if part_rows:  # parts per actor set how evenly several actors share the rows
        base["label"]["part_rows"] = part_rows
    results, reference = [], {}
    runs = [(k, how, size) for size in max_pool for k, how in interleaved(setting, repeat)]
    with tempfile.TemporaryDirectory() as tmp:
        split_dir = (run_dir / "data/split").resolve()
        if pool is not None:  # the run's seed split, this pool
            split_dir = Path(tmp) / "split"
            split_dir.mkdir()
            for name in ("train", "dev", "test"):
                shutil.copy(run_dir / f"data/split/{name}.parquet", split_dir)
            texts = pl.concat([read_table(pool)["text"]] * times)
            pl.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts}).write_parquet(
                split_dir / "pool.parquet"
            )
        for k, how, size in runs:
            params = json.loads(json.dumps(base))
            params["label"]["max_pool"] = size or None
            if how == "local":
                params["label"]["engine"] = "local"
            else:
                actors, threads = how.removeprefix("ray:").split("x")
                params["label"].update(engine="ray", ray_actors=int(actors), ray_threads=int(threads))
            target = Path(tmp) / f"{how.replace(':', '_')}_{size}_{k}"
            target.mkdir()
            (target / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
            seconds, peak_mb, cpu = run_stage(run_dir, target / "params.yaml", target, split_dir)
            metrics = json.loads((target / "label.json").read_text())
            pseudo = pl.read_parquet(target / "pseudo.parquet")
            proba = pseudo.select(cs.starts_with("proba_")).to_numpy()
            row = {
                "setting": how,
                "repeat": k,
                "max_pool": size or None,
                "rows_scored": metrics["scoring"]["rows"],
                "pool_rows": len(pseudo),
                "stage_seconds": round(seconds, 1),
                "scoring_seconds": metrics["scoring"]["seconds"],
                "scoring_rows_per_s": metrics["scoring"]["rows_per_s"],
                "tree_peak_rss_mb": round(peak_mb, 1),
                "cpu_seconds": cpu,
            }
            if size not in reference:
                reference[size] = (pseudo["label"], proba)
            else:  # the first setting's pseudo-labels of the same pool
                row["same_labels_as_first"] = bool((pseudo["label"] == reference[size][0]).all())
                row["max_proba_diff_vs_first"] = float(np.abs(proba - reference[size][1]).max())
            results.append(row)
            print(json.dumps(row), flush=True)
    report = {
        "what": "llm_label (stages/llm_label.py) per engine setting, one process each; scoring = the e5 embedding "
        "of every seed and pool row and the model teachers' probabilities of the dev and pool rows",
        "pool": str(pool or run_dir / "data/split/pool.parquet"),
        "pool_times": times,
        "teachers": base["label"]["teachers"],
        "part_rows": base["label"]["part_rows"],
        "hardware": hardware(),
        "results": results,
        "engine_overhead": engine_overhead(results, "rows_scored", "scoring_seconds"),
        "paired_overhead": paired_overhead(results, "rows_scored", "scoring_seconds") if repeat > 1 else {},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
