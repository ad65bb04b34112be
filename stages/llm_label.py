"""Stage `llm_label`: the teachers label the pool (the student's distillation data).

The cheap teachers (label.teachers: logreg, tfidf, spread) are cross-fitted over train+dev, so every seed
row has an out-of-fold probability; SetFit and the LLM, when listed, are out-of-fold on dev. The ensemble
(each teacher's calibration, the pool weights, the prior correction) is fitted on those out-of-fold rows
and saved as a model, with the refitted cheap teachers. Every teacher and the ensemble are reported on
their out-of-fold seed rows side by side, and, with label.gold, against the true labels of every pool row.
Output rows: id, text, label, confidence, kept, <teacher>_label for each teacher, and proba_<label> for
every label (the ensemble's distribution).

The row scoring (e5 embeddings, SetFit and LLM probabilities) runs in this process or, with
`label.engine: ray`, on Ray Data actors (commentclf.scoring, commentclf.ray_engine): same parts, same numbers."""

import time
from pathlib import Path

import numpy as np
import polars as pl
import typer
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import load_labeled, read_split
from commentclf.ensemble import Ensemble, pseudo_label_accuracy
from commentclf.files import write_json
from commentclf.manifest import read_manifest
from commentclf.metrics import classification_report
from commentclf.scoring import RowScorer, score_rows
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.teachers import CHEAP_TEACHERS, fit_cheap_teacher, full_proba, save_teachers, teacher_input


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (the encoder the cheap teachers embed with)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    setfit_dir: Path = typer.Option(..., help="SetFit model (a teacher when label.teachers lists it)"),
    llm_dir: Path = typer.Option(..., help="LoRA adapter of the LLM (a teacher when label.teachers lists it)"),
    teachers_out: Path = typer.Option(..., help="the cheap teachers refitted on the whole seed (joblib)"),
    ensemble_out: Path = typer.Option(..., help="the fitted ensemble (JSON model file)"),
    out: Path = typer.Option(..., help="pseudo-labelled pool rows (parquet)"),
    metrics: Path = typer.Option(..., help="teachers side by side, weights, pool class mix (JSON)"),
) -> None:
    cfg = load_params(params)
    lc, labels, minority = cfg.label, cfg.label_names, cfg.minority_label
    seed_everything(cfg.seed)
    start = time.perf_counter()
    train, dev = read_split(split_dir, "train"), read_split(split_dir, "dev")
    seed_rows = pl.concat([train.select("text", "label"), dev.select("text", "label")])
    seed_texts, y = seed_rows["text"].to_list(), np.array([labels.index(g) for g in seed_rows["label"]])
    is_dev = np.arange(len(seed_rows)) >= len(train)
    pool = read_split(split_dir, "pool")
    pool = pool.head(lc.max_pool) if lc.max_pool else pool
    pool_texts = pool["text"].to_list()

    # Row by row (the heavy part, on either engine): the e5 embedding of every seed and pool row, and the
    # model teachers' probabilities of the dev and pool rows (they were trained on the train rows).
    texts = seed_texts + pool_texts
    needs_models = np.concatenate([is_dev, np.ones(len(pool_texts), dtype=bool)])
    encoder = read_manifest(assets)["encoder"]
    t0 = time.perf_counter()
    if lc.engine == "ray":
        from commentclf.ray_engine import RayOptions, score_rows_ray

        opts = RayOptions(address=lc.ray_address, actors=lc.ray_actors, threads=lc.ray_threads)
        scores = score_rows_ray(cfg, encoder, setfit_dir, llm_dir, texts, needs_models, opts)
    else:
        scores = score_rows(RowScorer(cfg, encoder, setfit_dir, llm_dir), texts, needs_models, lc.part_rows)
    scoring_seconds = time.perf_counter() - t0
    n_seed = len(seed_rows)
    seed_emb, pool_emb = scores["embedding"][:n_seed], scores["embedding"][n_seed:]

    oof, pool_p, fitted, seconds = {}, {}, {}, {}
    for name in lc.teachers:
        if name in CHEAP_TEACHERS:
            t0 = time.perf_counter()
            fitted[name], oof[name] = fit_cheap_teacher(
                name, lc, cfg.seed, len(labels), seed_texts, seed_emb, y, pool_emb
            )
            pool_p[name] = full_proba(fitted[name], teacher_input(name, pool_texts, pool_emb), len(labels))
            seconds[name] = round(time.perf_counter() - t0, 1)
        else:  # trained on the train split: only dev rows are out-of-fold (the train rows are NaN)
            oof[name], pool_p[name] = scores[name][:n_seed], scores[name][n_seed:]

    ensemble = Ensemble.fit(oof, y, labels, lc)
    ensemble.save(ensemble_out)
    save_teachers(fitted, teachers_out)

    def report(p: np.ndarray) -> dict:
        rows = np.isfinite(p).all(1)
        return classification_report(
            [labels[i] for i in y[rows]], [labels[i] for i in p[rows].argmax(1)], labels, minority
        )

    side_by_side = {name: report(p) for name, p in oof.items()}
    side_by_side["ensemble"] = report(ensemble.predict_proba(oof))

    p = ensemble.predict_proba(pool_p)
    pred, conf = p.argmax(1), p.max(1)
    pseudo = pool.with_columns(
        label=pl.Series([labels[i] for i in pred], dtype=pl.String),
        confidence=conf.astype(float),
        kept=conf >= lc.confidence_floor,
        **{f"{name}_label": pl.Series([labels[i] for i in q.argmax(1)], dtype=pl.String) for name, q in pool_p.items()},
        # the whole distribution, for a student trained on soft targets (student.pseudo_target: soft)
        **{f"proba_{label}": p[:, j].astype(float) for j, label in enumerate(labels)},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    pseudo.write_parquet(out)

    kept = pseudo.filter(pl.col("kept"))
    result = {
        "teachers": lc.teachers,
        "weights": ensemble.weights,
        "calibration": {"method": lc.calibrate, **ensemble.calibration},
        "prior_bias": ensemble.prior_bias,
        "seed_rows": len(seed_rows),
        # scored by a model that never saw the row (the ensemble's own weights are fitted on these rows)
        "out_of_fold": side_by_side,
        "rows_labelled": len(pseudo),
        "rows_kept": len(kept),
        "confidence_floor": lc.confidence_floor,
        "class_mix": {label: int((pseudo["label"] == label).sum()) for label in labels},
        "class_mix_kept": {label: int((kept["label"] == label).sum()) for label in labels},
        "teacher_seconds": seconds,  # the cheap teachers' fits; the models' scoring is in `scoring`
        "scoring": {
            "engine": lc.engine,
            "rows": len(texts),
            "seconds": round(scoring_seconds, 1),
            "rows_per_s": round(len(texts) / scoring_seconds, 1),
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    if lc.gold:
        truth, _ = load_labeled(lc.gold, cfg.data, labels)
        result["pseudo_label_accuracy"] = pseudo_label_accuracy(pseudo, truth, labels, minority, lc.teachers)
    write_json(metrics, result)
    console = Console()
    console.print({k: result[k] for k in ("weights", "rows_labelled", "rows_kept", "class_mix")})
    console.print({name: round(r["macro_f1"], 3) for name, r in side_by_side.items()})
    if lc.gold:
        console.print(
            {n: r and round(r["accuracy"], 3) for n, r in result["pseudo_label_accuracy"]["all_rows"].items()}
        )


if __name__ == "__main__":
    run(main)
