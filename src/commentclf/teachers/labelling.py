"""The `llm_label` stage's work: the teachers label the pool (the student's distillation data).

The cheap teachers (label.teachers: logreg, tfidf, spread) are cross-fitted over train+dev, so every seed
row has an out-of-fold probability; SetFit and the LLM, when listed, are out-of-fold on dev (they were
trained on the train rows). The ensemble (each teacher's calibration, the pool weights, the prior
correction) is fitted on those out-of-fold rows. Every teacher and the ensemble are reported on their
out-of-fold seed rows side by side.

The row scoring (e5 embeddings, SetFit and LLM probabilities) runs in this process or, with `label.engine:
ray`, on Ray Data actors (`scoring`, `ray_scoring`): same parts, same numbers. The `llm_server` teacher
(`server`) runs on the local engine, its answers cached across runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from commentclf.config import Params
from commentclf.metrics import classification_report
from commentclf.teachers.cheap import CHEAP_TEACHERS, fit_cheap_teacher, full_proba, teacher_input
from commentclf.teachers.ensemble import Ensemble
from commentclf.teachers.recipe import Recipe, build_replays, choose_recipe
from commentclf.teachers.scoring import RowScorer, score_rows
from commentclf.teachers.server import server_teacher


@dataclass
class LabellingRows:
    """The rows the teachers see: the seed (train then dev, with their labels) and the pool to label."""

    seed_texts: list[str]
    y: np.ndarray
    """The seed rows' label indices."""
    is_dev: np.ndarray
    pool: pl.DataFrame

    @classmethod
    def from_splits(cls, train: pl.DataFrame, dev: pl.DataFrame, pool: pl.DataFrame, cfg: Params) -> LabellingRows:
        seed = pl.concat([train.select("text", "label"), dev.select("text", "label")])
        y = np.array([cfg.label_names.index(g) for g in seed["label"]])
        pool = pool.head(cfg.label.max_pool) if cfg.label.max_pool else pool
        return cls(seed["text"].to_list(), y, np.arange(len(seed)) >= len(train), pool)

    @property
    def texts(self) -> list[str]:
        return self.seed_texts + self.pool["text"].to_list()

    @property
    def needs_models(self) -> np.ndarray:
        """The rows the model teachers score: dev (out-of-fold for them) and pool."""
        return np.concatenate([self.is_dev, np.ones(len(self.pool), dtype=bool)])


@dataclass
class RowScores:
    """Row by row, seed rows first: {"embedding": (n, dim), <model teacher>: (n, labels)}, and what it took."""

    arrays: dict[str, np.ndarray]
    engine: str
    seconds: float
    server: dict | None = None
    """The llm_server teacher's requests, cache hits, failures by kind, tokens and rows/s (when listed)."""


@dataclass
class PoolLabels:
    """What llm_label writes: the ensemble, the refitted cheap teachers, the pseudo-labelled pool, the report."""

    ensemble: Ensemble
    recipe: Recipe
    """How the student learns from `pseudo`: chosen on the seed (label.recipe: auto) or the params'."""
    cheap_teachers: dict
    pseudo: pl.DataFrame
    """The pool's columns + label, confidence, kept, <teacher>_label and proba_<label> (the ensemble's
    distribution, for a student trained on soft targets)."""
    seed_oof: pl.DataFrame
    """Each seed row's text, given label, split and proba_<label>: the cheap teachers' mean out-of-fold
    probabilities, which `suggest.review` ranks (SetFit and the LLM are out of fold on dev rows only)."""
    report: dict


def score(
    rows: LabellingRows, cfg: Params, encoder: str, setfit_dir: Path, llm_dir: Path, server_cache: Path
) -> RowScores:
    """The heavy part, on either engine: the e5 embedding of every seed and pool row, and the model teachers'
    probabilities of the dev and pool rows."""
    lc, texts = cfg.label, rows.texts
    start = time.perf_counter()
    server = None
    if "llm_server" in lc.teachers:
        train = ~rows.is_dev
        texts_train = [t for t, keep in zip(rows.seed_texts, train) if keep]
        server = server_teacher(texts_train, [cfg.label_names[y] for y in rows.y[train]], cfg, server_cache)
    if lc.engine == "ray":
        from commentclf.ray_engine import RayOptions
        from commentclf.teachers.ray_scoring import score_rows_ray

        opts = RayOptions(address=lc.ray_address, actors=lc.ray_actors, threads=lc.ray_threads)
        arrays = score_rows_ray(cfg, encoder, setfit_dir, llm_dir, texts, rows.needs_models, opts)
    else:
        scorer = RowScorer(cfg, encoder, setfit_dir, llm_dir, server=server)
        arrays = score_rows(scorer, texts, rows.needs_models, lc.part_rows)
    server_stats = server.stats.as_dict() if server else None
    return RowScores(arrays, lc.engine, time.perf_counter() - start, server_stats)


def label_pool(rows: LabellingRows, scores: RowScores, cfg: Params) -> PoolLabels:
    """Choose the recipe (label.recipe: auto), fit the cheap teachers and the ensemble (with the recipe's
    prior correction) on the seed's out-of-fold rows, then label the pool."""
    lc, labels, minority = cfg.label, cfg.label_names, cfg.minority_label
    n_seed, pool_texts = len(rows.seed_texts), rows.pool["text"].to_list()
    seed_emb, pool_emb = scores.arrays["embedding"][:n_seed], scores.arrays["embedding"][n_seed:]
    recipe_report = None
    if lc.recipe == "auto":
        t0 = time.perf_counter()
        recipe, recipe_report = choose_recipe(build_replays(rows.seed_texts, seed_emb, rows.y, cfg), cfg)
        recipe_report["seconds"] = round(time.perf_counter() - t0, 1)
    else:
        recipe = Recipe.fixed(cfg)
    lc = lc.model_copy(update={"prior_correction": recipe.prior_correction})
    oof, pool_p, fitted, seconds = {}, {}, {}, {}
    for name in lc.teachers:
        if name in CHEAP_TEACHERS:
            t0 = time.perf_counter()
            fitted[name], oof[name] = fit_cheap_teacher(
                name, lc, cfg.seed, len(labels), rows.seed_texts, seed_emb, rows.y, pool_emb
            )
            pool_p[name] = full_proba(fitted[name], teacher_input(name, pool_texts, pool_emb), len(labels))
            seconds[name] = round(time.perf_counter() - t0, 1)
        else:  # trained on the train split: only dev rows are out-of-fold (the train rows are NaN)
            oof[name], pool_p[name] = scores.arrays[name][:n_seed], scores.arrays[name][n_seed:]
    ensemble = Ensemble.fit(oof, rows.y, labels, lc)
    cheap = [oof[name] for name in lc.teachers if name in CHEAP_TEACHERS]
    seed_p = np.mean(cheap, axis=0) if cheap else ensemble.predict_proba(oof)  # the latter: dev rows only
    seed_oof = pl.DataFrame(
        {
            "text": rows.seed_texts,
            "label": [labels[i] for i in rows.y],
            "split": np.where(rows.is_dev, "dev", "train"),
            **{f"proba_{label}": seed_p[:, j].astype(float) for j, label in enumerate(labels)},
        }
    ).filter(pl.all_horizontal(pl.col(f"proba_{label}").is_not_nan() for label in labels))

    def report(p: np.ndarray) -> dict:
        scored = np.isfinite(p).all(1)
        gold, pred = rows.y[scored], p[scored].argmax(1)
        return classification_report([labels[i] for i in gold], [labels[i] for i in pred], labels, minority)

    side_by_side = {name: report(p) for name, p in oof.items()}
    side_by_side["ensemble"] = report(ensemble.predict_proba(oof))

    p = ensemble.predict_proba(pool_p)
    pred, conf = p.argmax(1), p.max(1)
    pseudo = rows.pool.with_columns(
        label=pl.Series([labels[i] for i in pred], dtype=pl.String),
        confidence=conf.astype(float),
        kept=conf >= recipe.floor,
        **{f"{name}_label": pl.Series([labels[i] for i in q.argmax(1)], dtype=pl.String) for name, q in pool_p.items()},
        **{f"proba_{label}": p[:, j].astype(float) for j, label in enumerate(labels)},
    )
    kept = pseudo.filter(pl.col("kept"))
    result = {
        "teachers": lc.teachers,
        "weights": ensemble.weights,
        "calibration": {"method": lc.calibrate, **ensemble.calibration},
        "prior_bias": ensemble.prior_bias,
        "seed_rows": n_seed,
        # scored by a model that never saw the row (the ensemble's own weights are fitted on these rows)
        "out_of_fold": side_by_side,
        "rows_labelled": len(pseudo),
        "rows_kept": len(kept),
        "confidence_floor": recipe.floor,
        "recipe": {"mode": lc.recipe, **(recipe_report or {"chosen": asdict(recipe)})},
        "class_mix": {label: int((pseudo["label"] == label).sum()) for label in labels},
        "class_mix_kept": {label: int((kept["label"] == label).sum()) for label in labels},
        "teacher_seconds": seconds,  # the cheap teachers' fits; the models' scoring is in `scoring`
        "scoring": {
            "engine": scores.engine,
            "rows": n_seed + len(pseudo),
            "seconds": round(scores.seconds, 1),
            "rows_per_s": round((n_seed + len(pseudo)) / scores.seconds, 1),
        },
        **({"llm_server": scores.server} if scores.server else {}),
    }
    return PoolLabels(ensemble, recipe, fitted, pseudo, seed_oof, result)
