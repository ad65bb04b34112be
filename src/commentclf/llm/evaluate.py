"""The fine-tuned LLM on labelled rows: quality and speed; for the generative head, both prediction modes side
by side (parse failures, agreement)."""

from __future__ import annotations

import time

from commentclf.config import LLMConfig, Params
from commentclf.data import most_frequent
from commentclf.llm.classifier import LLMClassifier
from commentclf.llm.head import HeadClassifier
from commentclf.metrics import classification_report


def evaluate_llm(
    clf: LLMClassifier, texts: list[str], gold: list[str], minority: str, fallback_label: str, cfg: LLMConfig
) -> dict:
    """Both modes on the same rows: `generate` at cfg.predict_batch_size, `score` at cfg.score_batch_size."""
    batch_size, score_batch_size, max_new_tokens = cfg.predict_batch_size, cfg.score_batch_size, cfg.max_new_tokens
    labels = clf.labels
    # Untimed warm-up of both modes on one batch: the first calls pay one-off costs (score's prefix cache,
    # torch's allocator and kernel selection) that weigh on a few dozen dev comments, not on a pool.
    clf.predict_generate(texts[:batch_size], fallback_label, batch_size, max_new_tokens)
    clf.score(texts[:score_batch_size], score_batch_size)
    start = time.perf_counter()
    gen_labels, statuses = clf.predict_generate(texts, fallback_label, batch_size, max_new_tokens)
    gen_ms = 1000 * (time.perf_counter() - start) / max(1, len(texts))
    start = time.perf_counter()
    proba = clf.score(texts, score_batch_size)
    score_ms = 1000 * (time.perf_counter() - start) / max(1, len(texts))
    score_labels = [labels[i] for i in proba.argmax(1)]
    parsed = [i for i, s in enumerate(statuses) if s == "ok"]
    agree = sum(gen_labels[i] == score_labels[i] for i in parsed)
    return {
        "generate": classification_report(gold, gen_labels, labels, minority),
        "score": classification_report(gold, score_labels, labels, minority),
        "parse": {
            "ok": statuses.count("ok"),
            "recovered": statuses.count("recovered"),
            "failed": statuses.count("failed"),
            "failure_rate": (len(statuses) - statuses.count("ok")) / max(1, len(statuses)),
            "fallback_label": fallback_label,
        },
        "score_generate_agreement": agree / len(parsed) if parsed else None,
        "agreement_rows": len(parsed),
        "ms_per_comment": {"generate": round(gen_ms, 1), "score": round(score_ms, 1)},
        "speedup_score_vs_generate": gen_ms / score_ms if score_ms else None,
    }


def evaluate_head(clf: HeadClassifier, texts: list[str], gold: list[str], minority: str, cfg: LLMConfig) -> dict:
    """The classifier head's argmax on labelled rows, under the key `score` as the generative path's."""
    clf.score(texts[: cfg.score_batch_size], cfg.score_batch_size)  # untimed warm-up, as in evaluate_llm
    start = time.perf_counter()
    proba = clf.score(texts, cfg.score_batch_size)
    ms = 1000 * (time.perf_counter() - start) / max(1, len(texts))
    predicted = [clf.labels[i] for i in proba.argmax(1)]
    return {
        "score": classification_report(gold, predicted, clf.labels, minority),
        "ms_per_comment": {"score": round(ms, 1)},
    }


def evaluate_dev(clf, texts: list[str], gold: list[str], train_labels: list[str], cfg: Params) -> dict:
    """The fine-tuned LLM on the dev rows: the head's argmax, or both generative modes (an unparsable answer
    becomes `llm.fallback_label`, or the train rows' most frequent label)."""
    s = cfg.llm
    if s.head == "classifier":
        return evaluate_head(clf, texts, gold, cfg.minority_label, s)
    fallback = s.fallback_label or most_frequent(train_labels)
    return evaluate_llm(clf, texts, gold, cfg.minority_label, fallback, s)
