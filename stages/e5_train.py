"""Stage `e5_train`: distil the teachers into a small encoder classifier (the student).

Training rows: the train split + pseudo-labels kept by llm_label with confidence >= student.pseudo_floor
(+ synthetic comments, a switch). The best epoch is chosen on dev. Saves models/student/ (an ordinary
model folder with id2label) and metrics/student.json: dev metrics, training time, rows per source, and,
with student.compare_heads, the other head and the frozen-embedding baseline side by side."""

from pathlib import Path

import pandas as pd
from rich.console import Console

from commentclf.assets import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.metrics import write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.student import StudentSettings, frozen_head_baseline, train_student


def main(
    params: Path = Path("params.yaml"),
    out_dir: Path = Path("models/student"),
    metrics: Path = Path("metrics/student.json"),
) -> None:
    cfg = load_params(params)
    s = cfg.student
    seed_everything(cfg.seed)
    train, dev = read_split("train"), read_split("dev")
    parts = {"train": train[["text", "label"]]}
    if s.use_pseudo:
        pseudo = pd.read_parquet("data/pseudo.parquet")
        parts["pseudo"] = pseudo[pseudo.kept & (pseudo.confidence >= s.pseudo_floor)][["text", "label"]]
    if s.use_synthetic:
        parts["synthetic"] = pd.read_parquet("data/synthetic.parquet")[["text", "label"]]
    rows = pd.concat(parts.values())
    texts, labels = rows.text.tolist(), rows.label.tolist()
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
        )
        return train_student(body, texts, labels, *dev_args, **common, s=settings, out_dir=out)

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
