"""The LoRA / QLoRA fine-tune of the LLM classifier: prompt/completion rows, oversampling, training."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from commentclf.config import LLMConfig
from commentclf.llm.backend import load_base, save_adapter, train_report
from commentclf.llm.prompts import ClassificationPrompt
from commentclf.llm.tokens import PromptTokens


def training_rows(tokenizer, tokens: PromptTokens, texts: list[str], labels: list[str]) -> list[dict]:
    """Pre-tokenised prompt/completion rows: trl trains on the completion only (completion_mask)."""
    rows = []
    for text, label in zip(texts, labels):
        prompt = tokens.prompt(tokenizer, text)
        answer = tokens.answers[label]
        rows.append({"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)})
    return rows


def balance(texts: list[str], labels: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Oversample every label to the size of the largest, so the rare label weighs as much in the loss."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    target = max(map(len, by_label.values()))
    idx: list[int] = []
    for members in by_label.values():
        idx += members + list(rng.choice(members, target - len(members), replace=True))
    idx = list(rng.permutation(idx))
    return [texts[i] for i in idx], [labels[i] for i in idx]


def finetune(
    model_name: str,
    backend: str,
    texts: list[str],
    labels: list[str],
    prompt: ClassificationPrompt,
    words: dict[str, str],
    cfg: LLMConfig,
    seed: int,
    out_dir: Path,
) -> tuple[dict, list[dict]]:
    """Train a LoRA adapter on (text, label) and save the adapter (never a merged model) to `out_dir`.
    `words`: label name -> the word the model is taught to answer, in label order. Returns a report and
    the loss curve (one row per logged step)."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    # Seed before the LoRA matrices are created (SFTTrainer wraps the model before Trainer seeds itself).
    set_seed(seed)
    label_names = list(words)
    model, tokenizer = load_base(model_name, backend, cfg.quantize, cfg.max_length)
    tokens = PromptTokens.build(tokenizer, prompt, label_names, cfg.max_length, words)
    dataset = Dataset.from_list(training_rows(tokenizer, tokens, texts, labels))

    peft_config = None
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        model = FastLanguageModel.get_peft_model(
            model,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.target_modules,
            bias="none",
            use_gradient_checkpointing=False,
            random_state=seed,
        )
    else:
        from peft import LoraConfig, prepare_model_for_kbit_training

        if cfg.quantize == "4bit":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        peft_config = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        )
    cuda = torch.cuda.is_available()
    # trl's default loss ("chunked_nll") projects only the answer tokens through the LM head, reading hidden
    # states from `model.base_model`. For Gemma-3 text models under transformers 4.x `base_model` resolves to
    # the whole causal LM (its prefix names the multimodal wrapper's attribute), which returns logits and
    # crashes trl; point it at the decoder (plain "nll" also works, but runs the 262k-word head over every
    # prompt token). The loss is the same either way.
    if model.base_model is model and isinstance(getattr(model, "model", None), torch.nn.Module):
        model.base_model_prefix = "model"
    args = SFTConfig(
        output_dir=str(out_dir / "_trainer"),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_ratio=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        max_length=cfg.max_length,
        completion_only_loss=True,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=cuda,
        use_cpu=not cuda,
        gradient_checkpointing=False,  # trl defaults to True, which halves speed on small models
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    meta = {
        "base_model": model_name,
        "labels": label_names,
        "answers": words,
        "quantize": cfg.quantize,  # an adapter trained on a 4-bit base is scored on a 4-bit base
        "max_length": cfg.max_length,
        "prompt_prefix": prompt.prefix,
        "prompt_suffix": prompt.suffix,
    }
    curve = save_adapter(trainer, tokenizer, out_dir, meta, sorted_lists=("target_modules",))
    report = train_report(curve, seconds, len(texts), result.global_step)
    return report, curve
