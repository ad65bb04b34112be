"""Stage `synth_gen`: an instruct LLM writes `n_per_class` new comments per label, each from ONE real
train example; candidates are filtered (parse, label, length, near-copy, duplicate, optional SetFit
check) and every rejection is counted by reason. Outputs: the kept comments (text, label, source_id) and
the rejected ones for inspection."""

from pathlib import Path

import polars as pl
import typer
from rich.console import Console

from commentclf.assets.encoders import load_embedder
from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.files import write_json
from commentclf.llm.backend import load_base
from commentclf.llm.synth import run_synth
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.teachers.setfit import load_setfit, setfit_proba


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    setfit_dir: Path = typer.Option(..., help="SetFit model (for synth.label_check)"),
    out: Path = typer.Option(..., help="kept synthetic comments (parquet)"),
    rejected_out: Path = typer.Option(..., help="rejected candidates with their reason (parquet)"),
    metrics: Path = typer.Option(..., help="counts by reason, tokens/s (JSON)"),
) -> None:
    cfg = load_params(params)
    seed_everything(cfg.seed)
    base = read_manifest(assets)
    train = read_split(split_dir, "train")
    seed_texts = pl.concat([read_split(split_dir, name) for name in ("train", "dev", "test")])["text"].to_list()

    generator = cfg.synth.generator or base["llm"]
    model, tokenizer = load_base(generator, "peft", "none", max_length=2048)
    embed = load_embedder(base["encoder"], prefix=cfg.setfit.prefix)
    predict_label = None
    if cfg.synth.label_check:
        setfit = load_setfit(setfit_dir)

        def predict_label(texts: list[str]) -> list[str]:
            return [cfg.label_names[i] for i in setfit_proba(setfit, texts, cfg.setfit.prefix).argmax(1)]

    kept, report, cands = run_synth(
        model,
        tokenizer,
        train,
        seed_texts,
        cfg.labels,
        cfg.language,
        cfg.context,
        cfg.synth,
        cfg.seed,
        embed,
        predict_label,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    kept.write_parquet(out)
    rejected = [(c.label, c.source_id, c.reason, c.raw) for c in cands if c.reason]
    schema = dict.fromkeys(["label", "source_id", "reason", "raw"], pl.String)
    pl.DataFrame(rejected, schema=schema, orient="row").write_parquet(rejected_out)
    write_json(metrics, {**report.as_dict(), "generator": generator})
    Console().print(report.as_dict())


if __name__ == "__main__":
    run(main)
