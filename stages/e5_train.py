"""Stage `e5_train`: distil the teachers into a small encoder classifier (the student).

Training rows: the train split + pseudo-labels kept by llm_label with confidence >= student.pseudo_floor
(+ synthetic comments, a switch). With `pseudo_target: soft` the pool rows (confidence >= pseudo_floor)
are trained towards the ensemble's whole distribution instead of its argmax. The best epoch is chosen on
dev. Saves the student (an ordinary model folder with id2label), its dev metrics, training time, rows per
source, the per-epoch curve (DVCLive) and, with student.compare_heads, the other head and the
frozen-embedding baseline side by side."""

from pathlib import Path

import polars as pl
import typer
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.errors import DataError
from commentclf.files import write_json
from commentclf.manifest import read_manifest
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.student import frozen_head_baseline, one_hot, predict_proba, self_train, sharpen, train_student
from commentclf.tracking import log_curve


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    pseudo: Path = typer.Option(..., help="pseudo-labelled pool rows (llm_label)"),
    synthetic: Path = typer.Option(..., help="kept synthetic comments (student.use_synthetic)"),
    out_dir: Path = typer.Option(..., help="where the student is saved"),
    metrics: Path = typer.Option(..., help="dev metrics and rows per source (JSON)"),
    live_dir: Path = typer.Option(..., help="DVCLive folder of the per-epoch curve"),
) -> None:
    cfg = load_params(params)
    s = cfg.student
    seed_everything(cfg.seed)
    train, dev = read_split(split_dir, "train"), read_split(split_dir, "dev")
    names = cfg.label_names
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
    if soft_targets is not None:
        start = len(parts["train"])
        targets[start : start + len(soft_targets)] = soft_targets
    body = s.body or read_manifest(assets)["encoder"]
    data = (body, texts, labels, dev["text"].to_list(), dev["label"].to_list(), names, cfg.minority_label)

    def finetune(head: str, out: Path | None) -> dict:
        return train_student(*data, s.model_copy(update={"head": head}), cfg.seed, out, targets=targets)

    pool_rows = slice(len(parts["train"]), len(parts["train"]) + len(parts.get("pseudo", [])))
    self_training = s.mode == "finetune" and s.self_training_rounds > 0 and pool_rows.stop > pool_rows.start
    curve = None
    if s.mode != "finetune":
        chosen = frozen_head_baseline(*data, s, cfg.seed, out_dir)
    elif not self_training:
        chosen = finetune(s.head, out_dir)
    else:
        pool_texts = texts[pool_rows]
        rounds = iter(range(1, s.self_training_rounds + 1))

        def relabel(student: dict):  # the student's own sharpened distribution replaces the teachers'
            new = targets.copy()
            p = predict_proba(student["model"], student["tokenizer"], pool_texts, s.prefix, s.max_length)
            new[pool_rows] = sharpen(p, s.soft_temperature)
            return new

        def retrain(new_targets):  # a fresh student from the base encoder, a new seed each round
            return train_student(*data, s, cfg.seed + next(rounds), None, targets=new_targets)

        chosen, curve = self_train(finetune(s.head, None), relabel, retrain, s.self_training_rounds)
        chosen["model"].save_pretrained(out_dir)
        chosen["tokenizer"].save_pretrained(out_dir)
    report = {
        "mode": s.mode,
        "head": chosen["head"],
        "body": body,
        "dev": chosen["dev"],
        "train_seconds": chosen["train_seconds"],
        "best_epoch": chosen.get("best_epoch"),
        "history": chosen.get("history"),
        "rows": {name: len(df) for name, df in parts.items()},
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
            others["frozen_logreg"] = frozen_head_baseline(*data, s, cfg.seed, None)
        report["compare_heads"] = {
            name: {"dev": r["dev"], "train_seconds": r["train_seconds"]} for name, r in others.items()
        }
    write_json(metrics, report)
    log_curve(live_dir, chosen.get("history") or [], step="epoch")
    Console().print(
        f"student ({s.mode}/{chosen['head']}) dev macro-F1 {chosen['dev']['macro_f1']:.3f}, "
        f"{cfg.minority_label} F1 {chosen['dev']['minority_f1']:.3f}; rows {report['rows']}"
    )


if __name__ == "__main__":
    run(main)
