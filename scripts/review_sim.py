"""Does `suggest.review` find wrong labels, and is fixing them worth it? Planted label noise on a labelled seed.

    python scripts/review_sim.py --seed-file ../shared/datasets/ruw-rare/seed.csv \
        --pool ../shared/datasets/ruw-rare/pool-rest.csv --eval ../shared/datasets/ruw-rare/eval.csv \
        --profile profiles/ruw-rare.yaml --out reports/ruw-rare/review.json

`--flip` of the seed rows (a fixed `--seed`) get another label drawn at random: a noisy copy, kept in memory
(`--flipped-out` writes it, outside the repository when the data must stay out of it). The cheap teachers of
`label.teachers` (the pipeline's own code: commentclf.teachers.cheap, cross-fitted over the seed, the pool as
label spreading's unlabelled nodes) give each seed row out-of-fold probabilities; `rank_label_issues` (the
`review` strategy's code) ranks them. Reported: the planted rows' share among the top `--top` rows (precision,
recall), and the eval macro-F1 of the seed-only logistic regression (frozen e5, class-balanced, as `seed_only`)
and of SetFit (`setfit.*` params; `--no-setfit` skips it) trained on the noisy seed, on the noisy seed with the
top `max(--top)` rows set back to their true labels (the oracle is the clean seed), and on the clean seed. The
models hold out the same stratified dev share (`split.dev_frac`) for SetFit's head choice.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import typer
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from commentclf.annotation.review import rank_label_issues
from commentclf.assets.encoders import load_embedder
from commentclf.assets.manifest import read_manifest
from commentclf.config import parse_params
from commentclf.profiles import load_profile, merge
from commentclf.seeding import seed_everything
from commentclf.teachers.cheap import CHEAP_TEACHERS, fit_cheap_teacher
from commentclf.teachers.setfit import setfit_proba, train_setfit


def main(
    seed_file: Path = typer.Option(..., help="the clean labelled seed (text,label): the oracle"),
    pool: Path = typer.Option(..., help="unlabelled pool (text): label spreading's unlabelled nodes"),
    eval_file: Path = typer.Option(..., "--eval", help="scored, never trained or ranked on"),
    profile: Path = typer.Option(None, help="profile merged into params.yaml (labels, label.*, setfit.*)"),
    params: Path = typer.Option(Path("params.yaml")),
    assets: Path = typer.Option(Path("models/base"), help="base models folder: the e5 encoder"),
    out: Path = typer.Option(..., help="the report (JSON)"),
    flip: float = typer.Option(0.1, min=0.0, max=0.5, help="share of seed rows given a wrong label"),
    top: list[int] = typer.Option([45, 90], help="review sizes scored; the largest is corrected"),
    seed: int = typer.Option(0),
    setfit: bool = typer.Option(True, help="also train SetFit on the three label sets (minutes each)"),
    flipped_out: Path = typer.Option(None, help="write the noisy seed here (CSV)"),
) -> None:
    raw = yaml.safe_load(params.read_text())
    cfg = parse_params(merge(raw, load_profile(profile)) if profile else raw)
    labels = cfg.label_names
    seed_df = pl.read_csv(seed_file, infer_schema=False)
    eval_df = pl.read_csv(eval_file, infer_schema=False)
    texts = seed_df["text"].to_list()
    clean = np.array([labels.index(v) for v in seed_df["label"]])

    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(clean), int(round(flip * len(clean))), replace=False)
    noisy = clean.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, len(labels), len(flipped))) % len(labels)
    if flipped_out:
        pl.DataFrame({"text": texts, "label": [labels[i] for i in noisy]}).write_csv(flipped_out)

    start = time.perf_counter()
    embed = load_embedder(read_manifest(assets)["encoder"], prefix=cfg.student.prefix)
    seed_x, eval_x = embed(texts), embed(eval_df["text"].to_list())
    pool_x = embed(pl.read_csv(pool, infer_schema=False)["text"].to_list())
    embed_seconds = time.perf_counter() - start

    teachers = [name for name in cfg.label.teachers if name in CHEAP_TEACHERS]
    oof = [fit_cheap_teacher(t, cfg.label, seed, len(labels), texts, seed_x, noisy, pool_x)[1] for t in teachers]
    review = rank_label_issues(np.mean(oof, axis=0), noisy)
    planted = set(flipped.tolist())
    ranked = {}
    for k in top:
        hits = len(set(review.order[:k].tolist()) & planted)
        ranked[f"top_{k}"] = {"precision": hits / k, "recall": hits / len(planted), "found": hits}

    corrected = noisy.copy()
    fixed = review.order[: max(top)]
    corrected[fixed] = clean[fixed]
    label_sets = {"flipped": noisy, "corrected": corrected, "clean": clean}
    train_idx, dev_idx = train_test_split(
        np.arange(len(clean)), test_size=cfg.split.dev_frac, stratify=clean, random_state=seed
    )
    eval_y = np.array([labels.index(v) for v in eval_df["label"]])
    minority = labels.index(cfg.minority_label)

    def scored(pred: np.ndarray) -> dict:
        return {
            "macro_f1": float(f1_score(eval_y, pred, average="macro")),
            "minority_f1": float(f1_score(eval_y, pred, labels=[minority], average="macro")),
        }

    models: dict[str, dict] = {"seed_only_logreg": {}, **({"setfit": {}} if setfit else {})}
    for name, y in label_sets.items():
        logreg = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed)
        models["seed_only_logreg"][name] = scored(logreg.fit(seed_x[train_idx], y[train_idx]).predict(eval_x))
        if not setfit:
            continue
        seed_everything(seed)
        with tempfile.TemporaryDirectory() as tmp:
            model, _, _ = train_setfit(
                cfg.setfit.body or read_manifest(assets)["encoder"],
                [texts[i] for i in train_idx],
                [labels[y[i]] for i in train_idx],
                [texts[i] for i in dev_idx],
                [labels[y[i]] for i in dev_idx],
                labels,
                cfg.minority_label,
                cfg.setfit,
                seed,
                Path(tmp),
            )
        pred = setfit_proba(model, eval_df["text"].to_list(), cfg.setfit.prefix).argmax(1)
        models["setfit"][name] = scored(pred)
        print(name, {m: r[name] for m, r in models.items()}, flush=True)

    report = {
        "seed_rows": len(clean),
        "eval_rows": len(eval_y),
        "flipped": {"share": flip, "rows": len(planted), "seed": seed},
        "teachers": teachers,
        "flagged_by_cleanlab": review.flagged,
        **ranked,
        "random_precision": len(planted) / len(clean),
        "corrected_rows": int(max(top)),
        "models": models,
        "embed_seconds": round(embed_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "models"}, indent=1), flush=True)


if __name__ == "__main__":
    typer.run(main)
