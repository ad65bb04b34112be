"""Stage `llm_finetune`: LoRA (or QLoRA) fine-tuning of a causal LM that answers {"label": "<name>"} to an
Alpaca-style prompt listing every label's description. Only the answer carries loss. Saves the adapter
in models/llm/ and writes metrics/llm.json: dev metrics of both prediction modes (generate, score),
parse-failure rate, score/generate agreement, and milliseconds per comment."""

from pathlib import Path

from commentclf.config import load_params
from commentclf.llm import choose_backend, import_unsloth_first
from commentclf.stage import run


def main(
    params: Path = Path("params.yaml"), out_dir: Path = Path("models/llm"), metrics: Path = Path("metrics/llm.json")
) -> None:
    cfg = load_params(params)
    backend = choose_backend(cfg.llm.backend)
    if backend == "unsloth":
        import_unsloth_first()  # before transformers / trl / peft are imported below

    import pandas as pd
    from rich.console import Console

    from commentclf.assets import read_manifest
    from commentclf.data import read_split
    from commentclf.evaluation import evaluate_llm
    from commentclf.llm import LLMClassifier, TrainSettings, balance, finetune
    from commentclf.metrics import write_json
    from commentclf.prompts import classification_prompt
    from commentclf.seeding import seed_everything

    s = cfg.llm
    seed_everything(cfg.seed)
    train, dev = read_split("train"), read_split("dev")
    rows = train[["text", "label"]]
    if s.use_synthetic:
        rows = pd.concat([rows, pd.read_parquet("data/synthetic.parquet")[["text", "label"]]])
    texts, labels = rows["text"].tolist(), rows["label"].tolist()
    if s.balance:
        texts, labels = balance(texts, labels, cfg.seed)

    base = s.model or read_manifest()["llm"]
    prompt = classification_prompt(cfg.labels, cfg.language, cfg.context, cfg.llm_answers)
    settings = TrainSettings(
        s.lora_r,
        s.lora_alpha,
        s.lora_dropout,
        s.target_modules,
        s.lr,
        s.epochs,
        s.batch_size,
        s.grad_accum,
        s.max_length,
        s.warmup_ratio,
        s.quantize,
        cfg.seed,
    )
    train_info = finetune(base, backend, texts, labels, cfg.label_names, prompt, settings, out_dir, cfg.llm_answers)

    fallback = s.fallback_label or train["label"].value_counts().idxmax()
    clf = LLMClassifier.load(out_dir, base, s.quantize)
    dev_eval = evaluate_llm(
        clf,
        dev.text.tolist(),
        dev.label.tolist(),
        cfg.minority_label,
        fallback,
        s.predict_batch_size,
        s.max_new_tokens,
        s.score_batch_size,
    )
    report = {
        "backend": backend,
        "base_model": base,
        "rows": {"train": len(train), "synthetic": len(rows) - len(train), "after_balance": len(texts)},
        **train_info,
        "dev": dev_eval,
    }
    write_json(metrics, report)
    Console().print(
        {
            "dev_score_macro_f1": dev_eval["score"]["macro_f1"],
            "dev_generate_macro_f1": dev_eval["generate"]["macro_f1"],
            "parse_failure_rate": dev_eval["parse"]["failure_rate"],
            "agreement": dev_eval["score_generate_agreement"],
            "ms": dev_eval["ms_per_comment"],
        }
    )


if __name__ == "__main__":
    run(main)
