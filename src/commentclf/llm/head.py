"""The LLM as a classifier head (`llm.head: classifier`): LoRA on the causal LM's
`AutoModelForSequenceClassification` (a linear `score` layer over the last token's hidden state).

One forward pass over the comment alone: no instruction, no answer tokens, so training and scoring cost a
fraction of the generative path's (whose prompt lists every label's description). The head learns the
labels from the seed only, where the generative answer can lean on what the model already knows of the
words in the prompt: which one teaches better is measured, not assumed (docs/design.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from commentclf.config import LLMConfig
from commentclf.llm.backend import load_tokenizer, save_adapter, train_report, weight_kwargs


def load_head_base(model_name: str, labels: list[str], quantize: str):
    """(model, tokenizer): the causal LM's body with a fresh `score` layer over `labels`."""
    import torch
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(model_name)
    cuda = torch.cuda.is_available()
    kwargs = weight_kwargs(quantize)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_name,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        **kwargs,
    )
    # The head reads the last non-padding token; without a pad id in the config a batch of two fails.
    model.config.pad_token_id = tokenizer.pad_token_id
    if cuda and quantize != "4bit":
        model = model.to("cuda")
    return model, tokenizer


def finetune_head(
    model_name: str,
    texts: list[str],
    labels: list[str],
    label_names: list[str],
    cfg: LLMConfig,
    seed: int,
    out_dir: Path,
) -> tuple[dict, list[dict]]:
    """Train LoRA adapters + the `score` layer on (text, label); save them (never a merged model) to
    `out_dir`. Same LoRA settings, learning rate, epochs and batch size as the generative path. Returns a
    report and the loss curve."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    set_seed(seed)  # before the score layer and the LoRA matrices are initialised
    model, tokenizer = load_head_base(model_name, label_names, cfg.quantize)
    if cfg.quantize == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    # task_type SEQ_CLS also trains and saves the fresh `score` layer whole (modules_to_save)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        bias="none",
        task_type="SEQ_CLS",
    )
    model = get_peft_model(model, lora)
    index = {name: i for i, name in enumerate(label_names)}
    encoded = tokenizer(texts, truncation=True, max_length=cfg.max_length)
    dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "labels": [index[g] for g in labels]})
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(out_dir / "_trainer"),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_ratio=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=cuda,
        use_cpu=not cuda,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    meta = {
        "head": "classifier",
        "base_model": model_name,
        "labels": label_names,
        "quantize": cfg.quantize,
        "max_length": cfg.max_length,
    }
    curve = save_adapter(trainer, tokenizer, out_dir, meta, sorted_lists=("target_modules", "modules_to_save"))
    report = train_report(curve, seconds, len(texts), result.global_step)
    return report, curve


class HeadClassifier:
    """A trained classifier head on its base model; `score` gives (n, n_labels) probabilities, like
    `LLMClassifier.score`, so the ensemble and the benchmark take either."""

    def __init__(self, model, tokenizer, labels: list[str], max_length: int):
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.device = next(model.parameters()).device
        self._torch = torch

    @classmethod
    def load(cls, adapter_dir: str | Path, base_model: str | None = None, quantize: str | None = None):
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        meta = json.loads((adapter_dir / "commentclf.json").read_text())
        quantize = meta["quantize"] if quantize is None else quantize
        model, tokenizer = load_head_base(base_model or meta["base_model"], meta["labels"], quantize)
        model = PeftModel.from_pretrained(model, str(adapter_dir))
        if quantize == "none":
            model = model.merge_and_unload()  # same outputs, no extra matmuls per layer
        return cls(model, tokenizer, meta["labels"], meta["max_length"])

    def score(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))  # similar lengths: little padding
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = max(1, *(len(ids[i]) for i in rows))
            batch = torch.tensor([ids[i] + [pad] * (width - len(ids[i])) for i in rows], device=self.device)
            mask = torch.tensor([[1] * len(ids[i]) + [0] * (width - len(ids[i])) for i in rows], device=self.device)
            with torch.no_grad():
                logits = self.model(input_ids=batch, attention_mask=mask).logits.float()
            out[rows] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out


def load_llm(adapter_dir: str | Path, base_model: str | None = None, quantize: str | None = None):
    """The fine-tuned LLM of either head, as its `commentclf.json` says; both have `.labels` and `.score`."""
    meta = json.loads((Path(adapter_dir) / "commentclf.json").read_text())
    if meta.get("head", "generative") == "classifier":
        return HeadClassifier.load(adapter_dir, base_model, quantize)
    from commentclf.llm.classifier import LLMClassifier

    return LLMClassifier.load(adapter_dir, base_model, quantize)
