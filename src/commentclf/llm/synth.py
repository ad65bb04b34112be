"""Synthetic comments: an instruct LLM writes new comments per label from ONE real train example each, and
every candidate goes through filters whose rejections are counted by reason.

The original threw much of its output away (chatty preambles, JSON cut by the token limit) and never published its
filter. Filters, in order — the first that fires is the reason recorded:
  truncated / unparsable  the answer is not a JSON object with a "text" (cut by max_new_tokens or not)
  missing_label / wrong_label   no label, or not the label that was asked for
  too_short / too_long    text length outside [min_chars, max_chars]
  near_copy               exact copy, or embedding cosine with its example above max_example_similarity
  duplicate               exact or near (cosine > max_duplicate_similarity) copy of a seed text or of a
                          synthetic text kept before it
  label_mismatch          (optional) the SetFit model puts it in another label
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from commentclf.config import Label, SynthConfig
from commentclf.data import normalize_text
from commentclf.llm.parsing import parse_synth
from commentclf.llm.prompts import SYNTH_ANSWER_START, synth_prompt

REASONS = [
    "truncated",
    "unparsable",
    "missing_label",
    "wrong_label",
    "too_short",
    "too_long",
    "near_copy",
    "duplicate",
    "label_mismatch",
]


@dataclass
class Candidate:
    label: str
    source_id: str
    example: str
    raw: str
    truncated: bool
    text: str | None = None
    reason: str | None = None  # None = kept


@dataclass
class SynthReport:
    requested: int = 0
    generated: int = 0
    kept: int = 0
    rejected: dict = field(default_factory=dict)
    kept_per_label: dict = field(default_factory=dict)
    new_tokens: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "requested": self.requested,
            "generated": self.generated,
            "kept": self.kept,
            "keep_rate": self.kept / self.generated if self.generated else 0.0,
            "rejected": self.rejected,
            "kept_per_label": self.kept_per_label,
            "tokens_per_second": self.new_tokens / self.seconds if self.seconds else 0.0,
            "seconds": round(self.seconds, 1),
        }


def plan_requests(train: pl.DataFrame, labels: list[Label], n_per_class: int, seed: int) -> list[tuple[Label, dict]]:
    """n_per_class (label, example) pairs per label, cycling through that label's train rows in a seeded order."""
    rng = np.random.default_rng(seed)
    requests = []
    for label in labels:
        rows = train.filter(pl.col("label") == label.name).to_dicts()
        if not rows:
            continue
        order = rng.permutation(len(rows))
        requests += [(label, rows[order[i % len(rows)]]) for i in range(n_per_class)]
    return requests


def build_prompt(tokenizer, label: Label, example: str, language: str, context: str) -> str:
    """Chat-formatted when the model has a chat template (instruct models), plain otherwise; the answer
    is started with `{"text": "` so the model writes the comment straight away."""
    content = synth_prompt(label, example, language, context)
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = content + "\n"
    return text + SYNTH_ANSWER_START


def generate(model, tokenizer, prompts: list[str], cfg: SynthConfig, seed: int) -> tuple[list[str], list[bool], int]:
    """Sampled, batched generation. Returns (continuations, truncated flags, new tokens)."""
    import torch

    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(seed)
    outputs, truncated, n_new = [], [], 0
    chat = bool(tokenizer.chat_template)
    for start in range(0, len(prompts), cfg.batch_size):
        batch = prompts[start : start + cfg.batch_size]
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=not chat).to(device)
        with torch.no_grad():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens,
                pad_token_id=pad_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        for row in new.tolist():
            ended = tokenizer.eos_token_id in row
            row = row[: row.index(tokenizer.eos_token_id)] if ended else row
            row = [t for t in row if t != pad_id]
            n_new += len(row)
            truncated.append(not ended)
            outputs.append(tokenizer.decode(row, skip_special_tokens=True))
    return outputs, truncated, n_new


def filter_candidates(
    cands: list[Candidate], cfg: SynthConfig, seed_texts: list[str], embed, predict_label=None
) -> None:
    """Set `text` and `reason` on every candidate (reason None = kept). `embed(texts)` returns
    L2-normalised vectors; `predict_label(texts)` (optional) returns labels for the consistency check."""
    for c in cands:
        parsed = parse_synth(SYNTH_ANSWER_START + c.raw, truncated=c.truncated)
        if parsed.reason != "ok":
            c.reason = parsed.reason
            continue
        c.text = normalize_text(parsed.text)
        if parsed.label != c.label:
            c.reason = "wrong_label"
        elif len(c.text) < cfg.min_chars:
            c.reason = "too_short"
        elif len(c.text) > cfg.max_chars:
            c.reason = "too_long"
        elif c.text == normalize_text(c.example):
            c.reason = "near_copy"

    alive = [c for c in cands if c.reason is None]
    if alive:
        vecs = embed([c.text for c in alive])
        examples = embed([c.example for c in alive])
        seed_vecs = embed(seed_texts) if seed_texts else np.zeros((0, vecs.shape[1]))
        seed_set = set(seed_texts)
        kept_vecs: list[np.ndarray] = []
        kept_texts: set[str] = set()
        for c, v, e in zip(alive, vecs, examples):
            if float(v @ e) > cfg.max_example_similarity:
                c.reason = "near_copy"
                continue
            near_seed = seed_vecs.size and float((seed_vecs @ v).max()) > cfg.max_duplicate_similarity
            near_kept = kept_vecs and float((np.stack(kept_vecs) @ v).max()) > cfg.max_duplicate_similarity
            if c.text in seed_set or c.text in kept_texts or near_seed or near_kept:
                c.reason = "duplicate"
                continue
            kept_vecs.append(v)
            kept_texts.add(c.text)

    if predict_label is not None:
        alive = [c for c in cands if c.reason is None]
        if alive:
            for c, predicted in zip(alive, predict_label([c.text for c in alive])):
                if predicted != c.label:
                    c.reason = "label_mismatch"


def run_synth(
    model,
    tokenizer,
    train: pl.DataFrame,
    seed_texts: list[str],
    labels: list[Label],
    language: str,
    context: str,
    cfg: SynthConfig,
    seed: int,
    embed,
    predict_label=None,
):
    """The whole stage: plan, generate, filter. Returns (kept DataFrame, SynthReport, all candidates)."""
    requests = plan_requests(train, labels, cfg.n_per_class, seed)
    prompts = [build_prompt(tokenizer, label, row["text"], language, context) for label, row in requests]
    start = time.perf_counter()
    outputs, truncated, n_new = generate(model, tokenizer, prompts, cfg, seed) if prompts else ([], [], 0)
    seconds = time.perf_counter() - start
    cands = [
        Candidate(label.name, row["id"], row["text"], raw, cut)
        for (label, row), raw, cut in zip(requests, outputs, truncated)
    ]
    filter_candidates(cands, cfg, seed_texts, embed, predict_label)
    kept = [c for c in cands if c.reason is None]
    counts = Counter(c.reason for c in cands if c.reason)
    report = SynthReport(
        requested=len(requests),
        generated=len(outputs),
        kept=len(kept),
        rejected={r: counts.get(r, 0) for r in REASONS},
        kept_per_label={label.name: sum(c.label == label.name for c in kept) for label in labels},
        new_tokens=n_new,
        seconds=seconds,
    )
    df = pl.DataFrame(
        {"text": [c.text for c in kept], "label": [c.label for c in kept], "source_id": [c.source_id for c in kept]},
        schema=dict.fromkeys(["text", "label", "source_id"], pl.String),
    )
    return df, report, cands
