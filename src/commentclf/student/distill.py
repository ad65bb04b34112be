"""Distillation, the `e5_train` recipe: the student's training set from the seed and the teachers'
pseudo-labels, then the configured run (the frozen-embedding head, one fine-tune, or noisy-student
self-training), and with `student.compare_heads` the other heads beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class Distillation:
    """What the student learns from: the training set, how many rows came from each source, and where the
    pseudo-labelled pool rows sit in it (self-training relabels those)."""

    data: TrainingSet
    rows: dict[str, int]
    pool_rows: slice


def distillation_set(
    train: pl.DataFrame, dev: pl.DataFrame, pseudo: Path, synthetic: Path, body: str, cfg: Params
) -> Distillation:
    """The train split + the pseudo-labels kept by llm_label with confidence >= student.pseudo_floor (+ the
    synthetic comments, a switch). With `pseudo_target: soft` the pool rows (confidence >= pseudo_floor) are
    trained towards the ensemble's sharpened distribution instead of its argmax."""
    s, names = cfg.student, cfg.label_names
    proba_columns = [f"proba_{label}" for label in names]
    parts = {"train": train.select("text", "label")}
    soft_targets = None
    if s.use_pseudo:
        rows = pl.read_parquet(pseudo)
        if s.pseudo_target == "soft":
            missing = sorted(set(proba_columns) - set(rows.columns))
            if missing:
                raise DataError(f"{pseudo} lacks {missing} (written by an older llm_label): rerun llm_label")
            rows = rows.filter(pl.col("confidence") >= s.pseudo_floor)
            soft_targets = sharpen(rows.select(proba_columns).to_numpy(), s.soft_temperature)
            parts["pseudo"] = rows.select("text", "label")
        else:
            parts["pseudo"] = rows.filter(pl.col("kept") & (pl.col("confidence") >= s.pseudo_floor)).select(
                "text", "label"
            )
    if s.use_synthetic:
        parts["synthetic"] = pl.read_parquet(synthetic).select("text", "label")
    rows = pl.concat(list(parts.values()))
    texts, labels = rows["text"].to_list(), rows["label"].to_list()
    targets = one_hot(labels, names)  # soft mode: the pool rows' distributions replace their one-hot rows
    start = len(parts["train"])
    if soft_targets is not None:
        targets[start : start + len(soft_targets)] = soft_targets
    data = TrainingSet(
        body, texts, labels, dev["text"].to_list(), dev["label"].to_list(), names, cfg.minority_label, targets
    )
    pool_rows = slice(start, start + len(parts.get("pseudo", [])))
    return Distillation(data, {name: len(df) for name, df in parts.items()}, pool_rows)


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
            new[d.pool_rows] = sharpen(p, s.soft_temperature)
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
        "pseudo_target": s.pseudo_target if s.use_pseudo else None,
        "soft_temperature": s.soft_temperature if s.use_pseudo and s.pseudo_target == "soft" else None,
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
