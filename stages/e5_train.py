"""Stage `e5_train`: distil the teachers into a small encoder classifier (the student).

Training rows: the train split + pseudo-labels kept by llm_label with confidence >= student.pseudo_floor
(+ synthetic comments, a switch). With `pseudo_target: soft` the pool rows (confidence >= pseudo_floor)
are trained towards the ensemble's whole distribution instead of its argmax.
The best epoch is chosen on dev. Saves models/student/ (an ordinary
model folder with id2label) and metrics/student.json: dev metrics, training time, rows per source, and,
with student.compare_heads, the other head and the frozen-embedding baseline side by side."""

from pathlib import Path

import pandas as pd
from rich.console import Console

from commentclf.assets import read_manifest
from commentclf.config import load_params
from commentclf.data import DataError, read_split
from commentclf.metrics import write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.student import StudentSettings, frozen_head_baseline, one_hot, sharpen, train_student


def main(
    params: Path = Path("params.yaml"),
    out_dir: Path = Path("models/student"),
    metrics: Path = Path("metrics/student.json"),
) -> None:
    cfg = load_params(params)
    s = cfg.student
    seed_everything(cfg.seed)
    train, dev = read_split("train"), read_split("dev")
    names = cfg.label_names
    proba_columns = [f"proba_{label}" for label in names]
    parts = {"train": train[["text", "label"]]}
    soft_targets = None
    if s.use_pseudo:
        pseudo = pd.read_parquet("data/pseudo.parquet")
        if s.pseudo_target == "soft":
            missing = sorted(set(proba_columns) - set(pseudo.columns))
            if missing:
                raise DataError(f"data/pseudo.parquet lacks {missing} (written by an older llm_label): rerun llm_label")
            pseudo = pseudo[pseudo.confidence >= s.pseudo_floor]
            soft_targets = sharpen(pseudo[proba_columns].to_numpy(), s.soft_temperature)
            parts["pseudo"] = pseudo[["text", "label"]]
        else:
            parts["pseudo"] = pseudo[pseudo.kept & (pseudo.confidence >= s.pseudo_floor)][["text", "label"]]
    if s.use_synthetic:
        parts["synthetic"] = pd.read_parquet("data/synthetic.parquet")[["text", "label"]]
    rows = pd.concat(parts.values())
    texts, labels = rows.text.tolist(), rows.label.tolist()
    targets = one_hot(labels, names)  # soft mode: the pool rows' distributions replace their one-hot rows
    if soft_targets is not None:
        start = len(parts["train"])
        targets[start : start + len(soft_targets)] = soft_targets
    body = s.body or read_manifest()["encoder"]
    common = dict(label_names=cfg.label_names, minority=cfg.minority_label)
    dev_args = (dev.text.tolist(), dev.label.tolist())

    def finetune(head: str, out: Path | None) -> dict:
        settings = StudentSettings(
            head,
            s.lr,
            s.epochs,
            s.batch_size,
            s.max_length,
            s.warmup_ratio,
            s.weight_decay,
            s.prefix,
            cfg.seed,
            head_lr=s.head_lr,
            select_on=s.select_on,
        )
        return train_student(body, texts, labels, *dev_args, **common, s=settings, out_dir=out, targets=targets)

    def head_only(out: Path | None) -> dict:
        return frozen_head_baseline(
            body,
            texts,
            labels,
            *dev_args,
            **common,
            prefix=s.prefix,
            max_length=s.max_length,
            seed=cfg.seed,
            out_dir=out,
        )

    chosen = finetune(s.head, out_dir) if s.mode == "finetune" else head_only(out_dir)
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
    }
    if s.compare_heads:
        others = {}
        if s.mode != "finetune" or s.head != "mean":
            others["finetune_mean"] = finetune("mean", None)
        if s.mode != "finetune" or s.head != "cls":
            others["finetune_cls"] = finetune("cls", None)
        if s.mode != "head":
            others["frozen_logreg"] = head_only(None)
        report["compare_heads"] = {
            name: {"dev": r["dev"], "train_seconds": r["train_seconds"]} for name, r in others.items()
        }
    write_json(metrics, report)
    Console().print(
        f"student ({s.mode}/{chosen['head']}) dev macro-F1 {chosen['dev']['macro_f1']:.3f}, "
        f"{cfg.minority_label} F1 {chosen['dev']['minority_f1']:.3f}; rows {report['rows']}"
    )


if __name__ == "__main__":
    run(main)
