"""The llm_server teacher on a run's split: zero- and k-shot quality, its weight, speed by concurrency, reruns.

    python scripts/server_teacher_bench.py --run-dir ../ruwsrv --with-label ../ruwsrv/srv1 \\
        --rerun-label ../ruwsrv/srv2 --without-label ../ruwsrv/srv0 --url http://127.0.0.1:8080/v1 \\
        --shots 2 --eval-rows 300 --out reports/ruw/llm_server.json

`--run-dir` is a checkout where the pipeline ran up to llm_label (its split, SetFit and assets are read);
`--with-label`, `--rerun-label` and `--without-label` are folders of three llm_label runs there (`--metrics`,
`--ensemble-out`, `--teachers-out` inside): with `llm_server` among the teachers, the same again (what a rerun
asks), and without it. The teachers' weights and out-of-fold scores are fitted on the seed rows alone, so a
bounded `label.max_pool` leaves them as a full run would have them. The zero-shot teacher and both ensembles
are scored on the whole test split; the `--shots` variant (a longer, slower prompt) on `--eval-rows` of it (a
seeded stratified sample, beside the zero-shot teacher on the same rows); rows/s on `--speed-rows` pool rows
with an empty cache at each concurrency.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import typer
from sklearn.metrics import f1_score

from commentclf.assets.encoders import load_embedder
from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.evaluation.benchmark import bootstrap_ci, hardware, paired_difference
from commentclf.teachers.cheap import score_teachers
from commentclf.teachers.ensemble import Ensemble
from commentclf.teachers.server import server_teacher
from commentclf.teachers.setfit import load_setfit, setfit_proba


def main(
    run_dir: Path = typer.Option(..., help="the checkout whose split, SetFit and assets the runs used"),
    with_label: Path = typer.Option(..., help="llm_label run with llm_server among the teachers"),
    rerun_label: Path = typer.Option(..., help="the same llm_label run again (same cache)"),
    without_label: Path = typer.Option(..., help="llm_label run without llm_server"),
    url: str = typer.Option(..., help="the server's base URL (serving label.server.model)"),
    shots: int = typer.Option(2, help="examples per label of the k-shot variant"),
    eval_rows: int = typer.Option(300, help="test rows the k-shot variant is scored on (zero-shot: all)"),
    speed_rows: int = typer.Option(100, help="pool rows timed at each concurrency"),
    out: Path = typer.Option(..., help="the JSON to write"),
) -> None:
    cfg = load_params(run_dir / "params.yaml")
    labels, minority, seed = cfg.label_names, cfg.minority_label, cfg.seed
    server = cfg.label.server.model_copy(update={"base_url": url})
    split = {name: read_split(run_dir / "data/split", name) for name in ("train", "dev", "test", "pool")}
    train, dev = split["train"], split["dev"]
    test = split["test"]
    texts, gold = test["text"].to_list(), test["label"].to_list()
    # the k-shot prompt is longer and slower: a seeded stratified sample of the test rows
    shuffled = test.sample(fraction=1.0, shuffle=True, seed=seed)
    sample = pl.concat(
        [g.head(round(eval_rows * len(g) / len(test))) for _, g in shuffled.group_by("label", maintain_order=True)]
    )
    scratch = Path(tempfile.mkdtemp())

    def teacher(cache: Path, **update):
        label = cfg.label.model_copy(update={"server": server.model_copy(update=update)})
        return server_teacher(
            train["text"].to_list(), train["label"].to_list(), cfg.model_copy(update={"label": label}), cache
        )

    def quality(p: np.ndarray, rows_gold: list[str]) -> dict:
        pred = [labels[i] for i in p.argmax(1)]
        macro_ci, minority_ci = bootstrap_ci(rows_gold, pred, labels, minority, 1000, seed)
        return {
            "macro_f1": float(f1_score(rows_gold, pred, labels=labels, average="macro", zero_division=0)),
            "macro_f1_ci": macro_ci,
            "minority_f1_ci": minority_ci,
            "predicted": {label: pred.count(label) for label in labels},
        }

    first, rerun, without = (
        json.loads((d / "label.json").read_text()) for d in (with_label, rerun_label, without_label)
    )
    # dev rows come from the run's cache (llm_label asked them), test rows are asked here
    shutil.copy(run_dir / "data/llm_server_cache.sqlite", scratch / "zero.sqlite")
    by_shots = {}
    zero = teacher(scratch / "zero.sqlite")
    zero_p = zero(texts)
    by_shots["zero_shot"] = {
        "oof": quality(zero(dev["text"].to_list()), dev["label"].to_list()),
        "eval": quality(zero_p, gold) | {"rows": len(texts)},
        "stats": zero.stats.as_dict(),
    }
    print("zero-shot", by_shots["zero_shot"]["eval"]["macro_f1"], flush=True)

    # both ensembles on the same test rows: the teachers' probabilities once, each ensemble its own pooling
    manifest = read_manifest(run_dir / "models/base")
    embed = load_embedder(str(run_dir / manifest["encoder"]), prefix=cfg.student.prefix)  # relative to the run
    setfit = load_setfit(run_dir / "models/setfit")
    others = {
        "setfit": lambda x: setfit_proba(setfit, x, cfg.setfit.prefix),
        "llm_server": lambda x: zero_p,  # the same rows, already asked
    }
    ensembles = {}
    for name, folder in (("with", with_label), ("without", without_label)):
        ens = Ensemble.load(folder / "ensemble.json")
        fitted = joblib.load(folder / "teachers.joblib")
        ensembles[name] = ens.predict_proba(score_teachers(ens.teachers, texts, fitted, embed, others, len(labels)))
    preds = {name: [labels[i] for i in p.argmax(1)] for name, p in ensembles.items()}
    difference = paired_difference(gold, preds["with"], preds["without"], labels, minority, 1000, seed)
    print("ensemble with - without", difference, flush=True)

    k = teacher(scratch / "k.sqlite", shots=shots)
    by_shots[f"{shots}_shot"] = {
        "oof": quality(k(dev["text"].to_list()), dev["label"].to_list()),
        "eval": quality(k(sample["text"].to_list()), sample["label"].to_list()) | {"rows": len(sample)},
        "eval_zero_shot_same_rows": quality(zero(sample["text"].to_list()), sample["label"].to_list()),
        "stats": k.stats.as_dict(),
    }
    print(f"{shots}-shot", by_shots[f"{shots}_shot"]["eval"]["macro_f1"], flush=True)

    speed = {}
    rows = split["pool"]["text"].to_list()[-speed_rows:]  # the last rows of the pool: never asked by llm_label here
    for concurrency in (1, 2, 4):
        t = teacher(scratch / f"speed{concurrency}.sqlite", concurrency=concurrency)
        t(rows)
        speed[str(concurrency)] = t.stats.as_dict()["rows_per_s"]
        print("concurrency", concurrency, speed[str(concurrency)], "rows/s", flush=True)
    shutil.rmtree(scratch)

    result = {
        "what": "the llm_server teacher (SmolLM2-135M Q4_1, llama.cpp) on a run split, by server_teacher_bench.py",
        "model": cfg.label.server.model,
        "endpoint": cfg.label.server.endpoint,
        "hardware": {**hardware(), "server": "llama-cpp-python 0.3.36 on the same machine, 2 threads"},
        "weight": first["weights"]["llm_server"],
        "weights": first["weights"],
        "oof_rows": len(dev),
        "oof_macro_f1": first["out_of_fold"]["llm_server"]["macro_f1"],
        "eval_rows": len(texts),
        "eval_of": f"the test split, {cfg.data.test} (the k-shot variant on a stratified sample of {len(sample)})",
        "eval_macro_f1": by_shots["zero_shot"]["eval"]["macro_f1"],
        "by_shots": by_shots,
        "ensemble": {
            "oof_macro_f1": {
                "with": first["out_of_fold"]["ensemble"]["macro_f1"],
                "without": without["out_of_fold"]["ensemble"]["macro_f1"],
            },
            "eval": {name: quality(p, gold) for name, p in ensembles.items()},
            "eval_with_minus_without": difference,
        },
        "rows_per_s": speed,
        "speed_rows": len(rows),
        "requests_on_rerun": rerun["llm_server"]["requests"],
        "rerun": rerun["llm_server"],
        "failures": first["llm_server"]["failures"],
        "first_run": first["llm_server"],
        "llm_label": {
            "pool_rows": first["rows_labelled"],
            "seconds": {"with": first["seconds"], "without": without["seconds"], "rerun": rerun["seconds"]},
        },
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("weight", "oof_macro_f1", "eval_macro_f1", "rows_per_s", "requests_on_rerun")}
        )
    )


if __name__ == "__main__":
    typer.run(main)
