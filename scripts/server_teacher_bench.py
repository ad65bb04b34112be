"""The llm_server teacher on a finished run: zero- and k-shot quality, speed by concurrency, what a rerun costs.

    python scripts/server_teacher_bench.py --run-dir ../ruwsrv --saved reports/ruw/llm-server \\
        --without reports/ruw --url http://127.0.0.1:8080/v1 --shots 2 --out reports/ruw/llm_server.json

`--run-dir` is a checkout where `make exp` ran with `llm_server` among the teachers, and where `dvc repro -f -s
llm_label` was then run once more (its metrics/label.json is the rerun's); `--saved` is that run saved by
`report.py save` before the rerun; `--without` the same profile's run without the server teacher. The
zero-shot figures come from the run's own stages (their caches are copied, so nothing is asked twice); the
k-shot ones ask the server for the dev rows and the test split; rows/s are timed on `--speed-rows` pool rows
with an empty cache at each concurrency.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import typer
from sklearn.metrics import f1_score

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.evaluation.benchmark import hardware
from commentclf.teachers.server import server_teacher


def macro_f1(cfg, teacher, texts: list[str], gold: list[str]) -> float:
    pred = [cfg.label_names[i] for i in teacher(texts).argmax(1)]
    return float(f1_score(gold, pred, labels=cfg.label_names, average="macro", zero_division=0))


def main(
    run_dir: Path = typer.Option(..., help="the checkout of the run with llm_server among the teachers"),
    saved: Path = typer.Option(..., help="that run saved by report.py (its first llm_label)"),
    without: Path = typer.Option(..., help="the same profile's saved run without the server teacher"),
    url: str = typer.Option(..., help="the server's base URL (serving the run's label.server.model)"),
    shots: int = typer.Option(2, help="examples per label of the k-shot variant"),
    speed_rows: int = typer.Option(100, help="pool rows timed at each concurrency"),
    out: Path = typer.Option(..., help="the JSON to write"),
) -> None:
    cfg = load_params(run_dir / "params.yaml")
    server = cfg.label.server.model_copy(update={"base_url": url})
    split = {name: read_split(run_dir / "data/split", name) for name in ("train", "dev", "test", "pool")}
    train, dev, test = split["train"], split["dev"], split["test"]
    scratch = Path(tempfile.mkdtemp())

    def teacher(cache: Path, **update):
        label = cfg.label.model_copy(update={"server": server.model_copy(update=update)})
        c = cfg.model_copy(update={"label": label})
        return server_teacher(train["text"].to_list(), train["label"].to_list(), c, cache)

    first, rerun = (
        json.loads((saved / "label.json").read_text()),
        json.loads((run_dir / "metrics/label.json").read_text()),
    )
    bench, bench_without = (json.loads((d / "benchmark.json").read_text()) for d in (saved, without))
    label_without = json.loads((without / "label.json").read_text())

    # zero-shot from the run's own caches (dev rows from llm_label's, test rows from the benchmark's)
    shutil.copy(run_dir / "data/llm_server_cache.sqlite", scratch / "zero_dev.sqlite")
    shutil.copy(run_dir / "data/llm_server_benchmark.sqlite", scratch / "zero_test.sqlite")
    zero_dev, zero_test = teacher(scratch / "zero_dev.sqlite"), teacher(scratch / "zero_test.sqlite")
    variants = {"zero_shot": (zero_dev, zero_test)}
    variants[f"{shots}_shot"] = (teacher(scratch / "k.sqlite", shots=shots),) * 2
    quality = {}
    for name, (on_dev, on_test) in variants.items():
        quality[name] = {
            "oof_macro_f1": macro_f1(cfg, on_dev, dev["text"].to_list(), dev["label"].to_list()),
            "eval_macro_f1": macro_f1(cfg, on_test, test["text"].to_list(), test["label"].to_list()),
            "asked": on_dev.stats.asked + (on_test.stats.asked if on_test is not on_dev else 0),
            "failures": dict(on_dev.stats.failures + (on_test.stats.failures if on_test is not on_dev else Counter())),
        }
        print(name, quality[name], flush=True)

    speed = {}
    rows = split["pool"]["text"].to_list()[:speed_rows]
    for concurrency in (1, 2, 4):
        t = teacher(scratch / f"speed{concurrency}.sqlite", concurrency=concurrency)
        t(rows)
        speed[str(concurrency)] = t.stats.as_dict()["rows_per_s"]
        print("concurrency", concurrency, speed[str(concurrency)], "rows/s", flush=True)
    shutil.rmtree(scratch)

    ens, ens_without = bench["models"]["ensemble"], bench_without["models"]["ensemble"]
    result = {
        "run": str(saved),
        "model": cfg.label.server.model,
        "endpoint": cfg.label.server.endpoint,
        "hardware": {**hardware(), "server": "llama-cpp-python 0.3.36 on the same 2 cores, 2 threads"},
        "weight": first["weights"]["llm_server"],
        "weights": first["weights"],
        "oof_macro_f1": quality["zero_shot"]["oof_macro_f1"],
        "eval_macro_f1": quality["zero_shot"]["eval_macro_f1"],
        "oof_rows": len(dev),
        "eval_rows": len(test),
        "by_shots": quality,
        "rows_per_s": speed,
        "speed_rows": len(rows),
        "requests_on_rerun": rerun["llm_server"]["requests"],
        "rerun": rerun["llm_server"],
        "failures": first["llm_server"]["failures"],
        "first_run": first["llm_server"],
        "llm_label_seconds": {"with": first["seconds"], "without": label_without["seconds"]},
        "ensemble": {
            "oof_macro_f1": {
                "with": first["out_of_fold"]["ensemble"]["macro_f1"],
                "without": label_without["out_of_fold"]["ensemble"]["macro_f1"],
            },
            "eval_macro_f1": {"with": ens["macro_f1"], "without": ens_without["macro_f1"]},
            "eval_macro_f1_ci": {"with": ens["macro_f1_ci"], "without": ens_without["macro_f1_ci"]},
        },
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("weight", "oof_macro_f1", "eval_macro_f1", "rows_per_s")}))


if __name__ == "__main__":
    typer.run(main)
