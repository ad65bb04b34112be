"""Does `commentclf prevalence` stream like `predict`? Peak RSS of each over files of N rows, the model replaced
by a numpy scorer so that a million rows take minutes, not hours (the ONNX model's own memory is the same in
both and is measured by bench_predict.py; what differs is what each holds besides it).

    python scripts/bench_prevalence.py --source data/split/pool.parquet --rows 10000 --rows 1000000 \
        --out reports/measurements/prevalence_memory.json

Each (job, size) runs in its own process: `predict` is `streaming.predict_file`, `prevalence` is
`inference.prevalence.prevalence_of_file` (the whole command: scoring into parts, then every method's shares
with bootstrap intervals over the calib rows of data/split/calib.parquet). Peak RSS is the process's VmHWM.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import typer

from commentclf.evaluation.benchmark import hardware

CHILD = """
import sys, zlib
from pathlib import Path
import numpy as np

class Scorer:
    '''Scores from the text's hash: deterministic, instant, the shape of the student's.'''
    labels = ["pro_ukraine", "pro_russia", "off_topic"]
    version = "numpy-scorer"
    def predict_proba(self, texts, batch_size=1):
        h = np.array([zlib.crc32(t.encode()) for t in texts], dtype=np.float64)
        raw = np.stack([h % 7 + 1, h % 5 + 1, h % 3 + 1], axis=1)
        return raw / raw.sum(1, keepdims=True)

job, input, out, heldout = sys.argv[1:5]
clf = Scorer()
if job == "predict":
    from commentclf.inference.streaming import predict_file
    predict_file(clf, Path(input), Path(out))
else:
    from commentclf.inference.prevalence import PrevalenceOptions, prevalence_of_file, read_heldout
    prevalence_of_file(clf, Path(input), read_heldout(clf, Path(heldout)), Path(out), PrevalenceOptions(bootstrap=200))
print("PEAK_RSS_KB", [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0], file=sys.stderr)
"""


def main(
    source: Path = typer.Option(Path("data/split/pool.parquet"), help="texts to repeat (column text)"),
    heldout: Path = typer.Option(Path("data/split/calib.parquet"), help="prevalence's held-out rows"),
    rows: list[int] = typer.Option([10_000, 1_000_000], help="input sizes"),
    out: Path = typer.Option(..., help="JSON report"),
) -> None:
    texts = pl.read_parquet(source)["text"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in rows:
            path = Path(tmp) / f"in_{n}.parquet"
            repeated = pl.DataFrame({"text": texts.sample(n, with_replacement=True, seed=0)})
            repeated.with_row_index("id").with_columns(pl.col("id").cast(pl.String)).write_parquet(path)
            for job in ("predict", "prevalence"):
                start = time.time()
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, job, str(path), f"{tmp}/{job}_{n}", str(heldout)],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode:
                    raise SystemExit(proc.stderr[-2000:])
                kb = int(proc.stderr.split("PEAK_RSS_KB")[-1].split()[0])
                results.append(
                    {"job": job, "rows": n, "peak_rss_mb": round(kb / 1024, 1), "wall_s": round(time.time() - start, 1)}
                )
                print(results[-1], flush=True)
    report = {
        "what": "peak RSS of predict_file and prevalence_of_file (scoring into parts, then every method's shares with "
        "200 bootstrap draws) per input size, the ONNX model replaced by a numpy scorer in both",
        "command": " ".join(sys.argv),
        "hardware": hardware(),
        "results": results,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
