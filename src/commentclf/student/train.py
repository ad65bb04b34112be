"""Training the student: fine-tuning (the whole encoder + head, class-weighted cross-entropy against hard or
soft targets, best epoch on dev), the frozen-embedding baseline (`head` mode: mean-pooled states +
LogisticRegression, the fast one) and noisy-student self-training.

A run takes its `StudentConfig` whole and one `TrainingSet` (what to learn from and what to select on), and
returns a `StudentRun`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from commentclf.config import StudentConfig
from commentclf.metrics import classification_report
from commentclf.student.model import load_model, predict_proba


@dataclass
class TrainingSet:
    """The rows a student learns from and the dev rows its epoch is chosen on."""

    body: str
    """The encoder to start from: a folder or a hub id."""
    texts: list[str]
    labels: list[str]
    """One label per text (the argmax of its target when targets are soft)."""
    dev_texts: list[str]
    dev_labels: list[str]
    label_names: list[str]
    minority: str
    targets: np.ndarray | None = None
    """(n, labels) target distributions (soft pseudo-labels); None: one-hot `labels`."""
    weights: np.ndarray | None = None
    """(n,) row weights of the loss (the recipe's seed share); None: every row weighs 1."""

    def with_targets(self, targets: np.ndarray) -> TrainingSet:
        return replace(self, targets=targets)


@dataclass
class StudentRun:
    """A trained student and how it did on dev."""

    head: str
    dev: dict
    """The classification report on dev (of the chosen epoch)."""
    train_seconds: float
    model: object = field(repr=False)
    tokenizer: object = field(repr=False)
    dev_loss: float | None = None
    best_epoch: int | None = None
    history: list[dict] | None = None
    """Per epoch: train_loss, dev_loss, dev_macro_f1, dev_minority_f1 (fine-tuning only)."""

    def save(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)


def class_weights(targets: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights (sklearn's 'balanced') from (n, labels) targets, one-hot or soft (expected
    counts): the rare label counts as much as the others."""
    counts = targets.sum(0)
    weights = len(targets) / (targets.shape[1] * np.maximum(counts, 1e-6))  # an absent label weighs nothing anyway
    return torch.tensor(weights, dtype=torch.float32)


def one_hot(labels: list[str], label_names: list[str]) -> np.ndarray:
    out = np.zeros((len(labels), len(label_names)))
    out[np.arange(len(labels)), [label_names.index(label) for label in labels]] = 1.0
    return out


def sharpen(targets: np.ndarray, temperature: float) -> np.ndarray:
    """Target distributions raised to 1/temperature and renormalised (MixMatch's sharpening): below 1 the
    top label gains weight, the argmax never changes, and one-hot rows stay one-hot."""
    if temperature == 1.0:
        return targets
    powered = np.power(targets, 1.0 / temperature)
    return powered / powered.sum(1, keepdims=True)


def weighted_soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, row_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-weighted cross-entropy against target distributions. For one-hot targets it is exactly
    `cross_entropy(logits, y, weight=weights)` (a weighted mean over the batch); for soft targets each label
    of a row contributes its target probability times its weight; `row_weights` scale whole rows."""
    wt = targets * weights if row_weights is None else targets * weights * row_weights[:, None]
    return -(wt * torch.log_softmax(logits, -1)).sum() / wt.sum()


def length_batches(lengths: list[int], batch_size: int, rng: np.random.Generator, window: int = 50) -> list[np.ndarray]:
    """One epoch's batches: shuffled, then sorted by length within windows of `window` batches, so a batch
    is padded to a length near its rows' own (random batches of tweets pad ~50 tokens to ~80); the batch
    order is shuffled again so no epoch runs from short to long."""
    order = rng.permutation(len(lengths))
    span = window * batch_size
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_student(data: TrainingSet, s: StudentConfig, seed: int, out_dir: Path | None = None) -> StudentRun:
    """Fine-tune; after every epoch evaluate on dev and keep the best epoch (`s.select_on`). Saves to out_dir.
    The head is `s.head` (compare other heads with `s.model_copy(update={"head": ...})`)."""
    texts, labels, label_names = data.texts, data.labels, data.label_names
    dev_texts, dev_labels, minority, targets = data.dev_texts, data.dev_labels, data.minority, data.targets
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(data.body)
    model = load_model(data.body, s.head, label_names, s.layers)
    target = torch.tensor(one_hot(labels, label_names) if targets is None else targets, dtype=torch.float32)
    weights = class_weights(target.numpy())
    rows_w = None if data.weights is None else torch.tensor(data.weights, dtype=torch.float32)
    # The head (and the CLS pooler, which e5 lacks) starts from random weights while the encoder is
    # pre-trained: at the encoder's small lr the head can barely move in a few epochs (the training loss
    # stays at ln k), so it gets a learning rate of its own.
    if s.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    fresh, encoder = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (fresh if name.startswith("classifier") or ".pooler." in name else encoder).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": encoder, "lr": s.lr}, {"params": fresh, "lr": s.head_lr or s.lr}], weight_decay=s.weight_decay
    )
    steps_per_epoch = math.ceil(len(texts) / s.batch_size)
    total = steps_per_epoch * s.epochs
    warmup = int(total * s.warmup_ratio)

    def lr_factor(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    dev_gold = [label_names.index(label) for label in dev_labels]
    rng = np.random.default_rng(seed)
    if s.length_batches:
        lengths = [
            len(ids)
            for ids in tokenizer([s.prefix + t for t in texts], truncation=True, max_length=s.max_length)["input_ids"]
        ]
    best, history = None, []
    start = time.perf_counter()
    for epoch in range(1, s.epochs + 1):
        model.train()
        losses = []
        if s.length_batches:
            batches = length_batches(lengths, s.batch_size, rng)
        else:
            order = rng.permutation(len(texts))
            batches = [order[b : b + s.batch_size] for b in range(0, len(texts), s.batch_size)]
        for idx in batches:
            enc = tokenizer(
                [s.prefix + texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=s.max_length,
                return_tensors="pt",
            )
            logits = model(**enc).logits
            loss = weighted_soft_cross_entropy(logits, target[idx], weights, None if rows_w is None else rows_w[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        proba = predict_proba(model, tokenizer, dev_texts, s.prefix, s.max_length)
        report = classification_report(dev_labels, [label_names[i] for i in proba.argmax(1)], label_names, minority)
        dev_loss = float(-np.mean(np.log(np.maximum(proba[np.arange(len(dev_gold)), dev_gold], 1e-12))))
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "dev_loss": dev_loss,
                "dev_macro_f1": report["macro_f1"],
                "dev_minority_f1": report["minority_f1"],
            }
        )
        score = -dev_loss if s.select_on == "loss" else report[s.select_on]
        if best is None or score > best[3]:
            best = (epoch, report, copy.deepcopy(model.state_dict()), score)
    seconds = time.perf_counter() - start
    model.load_state_dict(best[2])
    run = StudentRun(
        head=s.head,
        dev=best[1],
        train_seconds=round(seconds, 1),
        model=model,
        tokenizer=tokenizer,
        dev_loss=history[best[0] - 1]["dev_loss"],
        best_epoch=best[0],
        history=history,
    )
    if out_dir is not None:
        run.save(out_dir)
    return run


def self_train(
    first: StudentRun,
    relabel: Callable[[StudentRun], np.ndarray],
    retrain: Callable[[np.ndarray], StudentRun],
    rounds: int,
) -> tuple[StudentRun, list[dict]]:
    """Noisy-student self-training: `relabel(student)` gives new targets for the training rows, and
    `retrain(targets)` trains a fresh student on them. Stops at the first round whose dev loss is not below
    the best so far (a flat or rising curve), and returns the best student with the per-round curve."""
    best, curve = first, [{"round": 0, "dev_loss": first.dev_loss, "kept": True}]
    for r in range(1, rounds + 1):
        candidate = retrain(relabel(best))
        better = candidate.dev_loss < best.dev_loss
        curve.append({"round": r, "dev_loss": candidate.dev_loss, "kept": better})
        if not better:
            break
        best = candidate
    return best, curve


def frozen_head_baseline(data: TrainingSet, s: StudentConfig, seed: int, out_dir: Path | None = None) -> StudentRun:
    """The `head` mode: frozen mean-pooled embeddings + class-balanced LogisticRegression.

    A multinomial logistic regression on the (unnormalised) mean-pooled states is exactly a
    MeanPoolingClassifier whose linear layer holds the regression's weights, so the result is saved as the
    same kind of folder as a fine-tuned student and exports to ONNX the same way.
    """
    from sklearn.linear_model import LogisticRegression

    prefix, max_length = s.prefix, s.max_length
    texts, labels, label_names = data.texts, data.labels, data.label_names
    tokenizer = AutoTokenizer.from_pretrained(data.body)
    model = load_model(data.body, "mean", label_names, s.layers).eval()

    def embed(batch_texts: list[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(batch_texts), 32):
                enc = tokenizer(
                    [prefix + t for t in batch_texts[start : start + 32]],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                hidden = model.bert(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        return np.concatenate(out)

    start = time.perf_counter()
    y = [label_names.index(label) for label in labels]
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed).fit(embed(texts), y)
    coef = np.zeros((len(label_names), clf.coef_.shape[1]))
    bias = np.zeros(len(label_names))
    coef[clf.classes_], bias[clf.classes_] = clf.coef_, clf.intercept_
    if len(clf.classes_) < len(label_names):  # a label absent from training can never win
        bias[np.setdiff1d(np.arange(len(label_names)), clf.classes_)] = -1e4
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(coef, dtype=torch.float32))
        model.classifier.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    seconds = time.perf_counter() - start
    proba = predict_proba(model, tokenizer, data.dev_texts, prefix, max_length)
    report = classification_report(
        data.dev_labels, [label_names[i] for i in proba.argmax(1)], label_names, data.minority
    )
    run = StudentRun(
        head="frozen+logreg", dev=report, train_seconds=round(seconds, 1), model=model, tokenizer=tokenizer
    )
    if out_dir is not None:
        run.save(out_dir)
    return run
