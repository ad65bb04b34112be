"""Stage `synth_gen`: an instruct LLM writes `n_per_class` new comments per label, each from ONE real
train example; candidates are filtered (parse, label, length, near-copy, duplicate, optional SetFit
check) and every rejection is counted by reason in metrics/synth.json. Output: data/synthetic.parquet
(text, label, source_id) and data/synthetic_rejected.parquet for inspection."""

from pathlib import Path

import pandas as pd
from rich.console import Console

from commentclf.assets import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.encoders import load_embedder
from commentclf.llm import load_base
from commentclf.metrics import write_json
from commentclf.seeding import seed_everything
from commentclf.setfit_model import load_setfit, setfit_proba
from commentclf.stage import run
from commentclf.synth import run_synth


def main(
    params: Path = Path("params.yaml"),
    out: Path = Path("data/synthetic.parquet"),
    rejected_out: Path = Path("data/synthetic_rejected.parquet"),
    metrics: Path = Path("metrics/synth.json"),
) -> None:
    cfg = load_params(params)
    seed_everything(cfg.seed)
    assets = read_manifest()
    train = read_split("train")
    seed_texts = pd.concat([read_split(name) for name in ("train", "dev", "test")])["text"].tolist()

    generator = cfg.synth.generator or assets["llm"]
    model, tokenizer = load_base(generator, "peft", "none", max_length=2048)
    embed = load_embedder(assets["encoder"], prefix=cfg.setfit.prefix)
    predict_label = None
    if cfg.synth.label_check:
        setfit = load_setfit("models/setfit")

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
    kept.to_parquet(out, index=False)
    rejected = [(c.label, c.source_id, c.reason, c.raw) for c in cands if c.reason]
    pd.DataFrame(rejected, columns=["label", "source_id", "reason", "raw"]).to_parquet(rejected_out, index=False)
    write_json(metrics, {**report.as_dict(), "generator": generator})
    Console().print(report.as_dict())


if __name__ == "__main__":
    run(main)
