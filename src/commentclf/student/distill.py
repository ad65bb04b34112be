"""Distillation, the `e5_train` recipe: the student's training set from the seed and the teachers'
pseudo-labels, then the configured run (the frozen-embedding head, one fine-tune, or noisy-student
self-training), and with `student.compare_heads` the other heads beside it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from commentclf.config import Params
from commentclf.errors import DataError
from commentclf.student.model import predict_proba
from commentclf.student.train import (
    StudentRun,
    TrainingSet,
    frozen_head_baseline,
    one_hot,
    self_train,
    sharpen,
    train_student,
)
from commentclf.teachers.recipe import Recipe


@dataclass
class Distillation:
    """What the student learns from: the training set, how many rows came from each source, and where the
    pseudo-labelled pool rows sit in it (self-training relabels those)."""

    data: TrainingSet
    rows: dict[str, int]
    pool_rows: slice
    recipe: Recipe


def distillation_set(
    train: pl.DataFrame, dev: pl.DataFrame, pseudo: Path, synthetic: Path, recipe: Recipe, body: str, cfg: Params
) -> Distillation:
    """The train split + the pool rows llm_label kept (ensemble confidence >= the recipe's floor), as the
    ensemble's argmax (`hard`) or its sharpened distribution (`soft`), + the synthetic comments (a switch).
    With a `seed_share` the train split's gold rows carry that share of the loss."""
    s, names = cfg.student, cfg.label_names
    proba_columns = [f"proba_{label}" for label in names]
    parts = {"train": train.select("text", "label")}
    pool_targets = None
    if s.use_pseudo:
        rows = pl.read_parquet(pseudo)
        missing = sorted(set(proba_columns) - set(rows.columns))
        if missing:
            raise DataError(f"{pseudo} lacks {missing} (written by an older llm_label): rerun llm_label")
        keep, pool_targets = recipe.targets(rows.select(proba_columns).to_numpy())
        parts["pseudo"] = rows.filter(pl.Series(keep)).select("text", "label")
    if s.use_synthetic:
        parts["synthetic"] = pl.read_parquet(synthetic).select("text", "label")
    rows = pl.concat(list(parts.values()))
    texts, labels = rows["text"].to_list(), rows["label"].to_list()
    targets = one_hot(labels, names)  # the pool rows' recipe targets replace their one-hot rows
    start, n_gold = len(parts["train"]), len(parts["train"])
    if pool_targets is not None:
        targets[start : start + len(pool_targets)] = pool_targets
    w_gold, w_other = recipe.row_weights(n_gold, len(rows) - n_gold)
    weights = np.where(np.arange(len(rows)) < n_gold, w_gold, w_other)
    data = TrainingSet(
        body, texts, labels, dev["text"].to_list(), dev["label"].to_list(), names, cfg.minority_label, targets, weights
    )
    pool_rows = slice(start, start + len(parts.get("pseudo", [])))
    return Distillation(data, {name: len(df) for name, df in parts.items()}, pool_rows, recipe)


def distill(d: Distillation, cfg: Params, out_dir: Path) -> tuple[StudentRun, dict]:
    """Train the configured student into `out_dir`; returns it with the stage's report (dev metrics, rows per
    source, the self-training curve, the compared heads)."""
    s, data = cfg.student, d.data

    def finetune(head: str, out: Path | None) -> StudentRun:
        return train_student(data, s.model_copy(update={"head": head}), cfg.seed, out)

    self_training = s.mode == "finetune" and s.self_training_rounds > 0 and d.pool_rows.stop > d.pool_rows.start
    curve = None
    if s.mode != "finetune":
        chosen = frozen_head_baseline(data, s, cfg.seed, out_dir)
    elif not self_training:
        chosen = finetune(s.head, out_dir)
    else:
        pool_texts = data.texts[d.pool_rows]
        rounds = iter(range(1, s.self_training_rounds + 1))

        def relabel(student: StudentRun):  # the student's own sharpened distribution replaces the teachers'
            new = data.targets.copy()
            p = predict_proba(student.model, student.tokenizer, pool_texts, s.prefix, s.max_length)
            new[d.pool_rows] = sharpen(p, d.recipe.temperature)
            return new

        def retrain(new_targets):  # a fresh student from the base encoder, a new seed each round
            return train_student(data.with_targets(new_targets), s, cfg.seed + next(rounds), None)

        chosen, curve = self_train(finetune(s.head, None), relabel, retrain, s.self_training_rounds)
        chosen.save(out_dir)
    report = {
        "mode": s.mode,
        "head": chosen.head,
        "body": data.body,
        "dev": chosen.dev,
        "train_seconds": chosen.train_seconds,
        "best_epoch": chosen.best_epoch,
        "history": chosen.history,
        "rows": d.rows,
        "recipe": asdict(d.recipe) if s.use_pseudo else None,
        "self_training": curve,
    }
    if s.compare_heads:
        others = {}
        if s.mode != "finetune" or s.head != "mean":
            others["finetune_mean"] = finetune("mean", None)
        if s.mode != "finetune" or s.head != "cls":
            others["finetune_cls"] = finetune("cls", None)
        if s.mode != "head":
            others["frozen_logreg"] = frozen_head_baseline(data, s, cfg.seed, None)
        report["compare_heads"] = {name: {"dev": r.dev, "train_seconds": r.train_seconds} for name, r in others.items()}
    return chosen, report
