"""Stage `llm_finetune`: LoRA (or QLoRA) fine-tuning of a causal LM.

`llm.head: generative` (default): the model answers {"label": "<word>"} to an Alpaca-style prompt listing
every label's description; only the answer carries loss. Dev metrics in both prediction modes (generate,
score): parse-failure rate, score/generate agreement, milliseconds per comment.
`llm.head: classifier`: LoRA on the model's sequence-classification head, over the comment alone; dev
metrics of its probabilities (reported as `score`, like the generative path's).
Saves the adapter and writes the loss curve (DVCLive)."""

from pathlib import Path

import typer

from commentclf.config import load_params
from commentclf.llm.backend import choose_backend, import_unsloth_first
from commentclf.stage import run


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    synthetic: Path = typer.Option(..., help="kept synthetic comments (llm.use_synthetic)"),
    out_dir: Path = typer.Option(..., help="where the LoRA adapter is saved"),
    metrics: Path = typer.Option(..., help="dev metrics of both modes (JSON)"),
    live_dir: Path = typer.Option(..., help="DVCLive folder of the loss curve"),
) -> None:
    cfg = load_params(params)
    backend = "peft" if cfg.llm.head == "classifier" else choose_backend(cfg.llm.backend)
    if backend == "unsloth":
        import_unsloth_first()  # before transformers / trl / peft are imported below

    import polars as pl
    from rich.console import Console

    from commentclf.assets.manifest import read_manifest
    from commentclf.data import read_split
    from commentclf.files import write_json
    from commentclf.llm.evaluate import evaluate_dev
    from commentclf.llm.head import finetune_head, load_llm
    from commentclf.llm.prompts import classification_prompt
    from commentclf.llm.train import balance, finetune
    from commentclf.seeding import seed_everything
    from commentclf.tracking import log_curve

    s = cfg.llm
    seed_everything(cfg.seed)
    train, dev = read_split(split_dir, "train"), read_split(split_dir, "dev")
    rows = train.select("text", "label")
    if s.use_synthetic:
        rows = pl.concat([rows, pl.read_parquet(synthetic).select("text", "label")])
    texts, labels = rows["text"].to_list(), rows["label"].to_list()
    if s.balance:
        texts, labels = balance(texts, labels, cfg.seed)

    base = s.model or read_manifest(assets)["llm"]
    if s.head == "classifier":
        train_info, curve = finetune_head(base, texts, labels, cfg.label_names, s, cfg.seed, out_dir)
    else:
        prompt = classification_prompt(cfg.labels, cfg.language, cfg.context, cfg.llm_answers)
        train_info, curve = finetune(base, backend, texts, labels, prompt, cfg.llm_answers, s, cfg.seed, out_dir)
    log_curve(live_dir, curve, step="step")

    clf = load_llm(out_dir, base, s.quantize)
    dev_eval = evaluate_dev(clf, dev["text"].to_list(), dev["label"].to_list(), train["label"].to_list(), cfg)
    report = {
        "head": s.head,
        "backend": backend,
        "base_model": base,
        "rows": {"train": len(train), "synthetic": len(rows) - len(train), "after_balance": len(texts)},
        **train_info,
        "dev": dev_eval,
    }
    write_json(metrics, report)
    Console().print({"dev_score_macro_f1": dev_eval["score"]["macro_f1"], "ms": dev_eval["ms_per_comment"]})


if __name__ == "__main__":
    run(main)
