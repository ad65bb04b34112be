"""Does `commentclf predict --input` stream in constant memory? Rows/s and peak RSS at several input sizes.

    python scripts/bench_predict.py --source data/split/pool.parquet --rows 10000 --rows 100000 \
        --out reports/demo/predict_streaming.json

Each size is a file of the source's texts repeated, labelled by `commentclf predict` in its own process
(peak RSS = that process's high-water mark, read as it exits). Writes one JSON with the hardware.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import typer

from commentclf.benchmark import hardware

# run in a child: the CLI, then its own peak RSS (ru_maxrss, KiB on Linux) on stderr, whatever the exit code
CHILD = """
import resource, sys
from commentclf.cli import app
try:
    app(sys.argv[1:])
finally:
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def main(
    source: Path = typer.Option(..., help="parquet or CSV with a text column"),
    rows: list[int] = typer.Option(..., help="input sizes to measure"),
    out: Path = typer.Option(..., help="JSON report"),
    model: Path = typer.Option(Path("models/onnx/int8")),
    params: Path = typer.Option(Path("params.yaml")),
    part_rows: int = typer.Option(10_000),
) -> None:
    texts = pl.read_parquet(source) if source.suffix == ".parquet" else pl.read_csv(source, infer_schema=False)
    texts = texts["text"].to_list()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in rows:
            data = Path(tmp) / f"in_{n}.parquet"
            pl.DataFrame({"id": range(n), "text": [texts[i % len(texts)] for i in range(n)]}).write_parquet(data)
            target = Path(tmp) / f"out_{n}"
            cmd = [sys.executable, "-c", CHILD, "predict", "--input", str(data), "--output", str(target)]
            cmd += ["--model", str(model), "--params", str(params), "--part-rows", str(part_rows)]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if proc.returncode:
                raise SystemExit(f"predict failed on {n} rows:\n{proc.stderr[-2000:]}")
            peak_kb = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
            labelled = pl.scan_parquet(str(target / "*.parquet")).select(pl.len()).collect().item()
            assert labelled == n, (labelled, n)
            results.append(
                {
                    "rows": n,
                    "seconds": round(seconds, 1),
                    "rows_per_s": round(n / seconds, 1),
                    "peak_rss_mb": round(peak_kb / 1024, 1),
                }
            )
            print(json.dumps(results[-1]), flush=True)
            shutil.rmtree(target)
    report = {
        "what": "commentclf predict --input (streamed, parquet parts), one process per size",
        "model": str(model),
        "part_rows": part_rows,
        "batch_size": 64,
        "mean_text_chars": round(sum(map(len, texts)) / len(texts), 1),
        "hardware": hardware(),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
