"""What `llm_label` computes row by row, on either engine: the e5 embedding of every row (the input of the
cheap teachers, which are fitted afterwards in the stage's process) and the probabilities of the model
teachers (setfit, llm, llm_server) for the rows that need them.

Both engines call the same `RowScorer` on the same parts of `label.part_rows` rows: the local engine one part
after another in the stage's process (`score_rows`), the Ray engine on a pool of actors
(`ray_scoring.score_rows_ray`). A part is sorted by length and batched inside the encoder, so equal parts
mean equal batches, and the two engines give the same numbers up to float rounding across thread counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.progress import track

from commentclf.assets.encoders import load_embedder
from commentclf.config import Params

MODEL_TEACHERS = ("setfit", "llm", "llm_server")
"""Teachers that are models of the pipeline's own stages, scored row by row (the rest are fitted here)."""


class RowScorer:
    """The encoder and the model teachers that `cfg.label.teachers` lists, loaded once; called on a list of
    texts, it returns {"embedding": (n, dim), <teacher>: (n, labels)}, the teachers' rows NaN where
    `needs_models` is False (the train rows they were trained on, which are not out-of-fold)."""

    def __init__(
        self,
        cfg: Params,
        encoder: str,
        setfit_dir: Path,
        llm_dir: Path,
        threads: int | None = None,
        server: Callable[[list[str]], np.ndarray] | None = None,
    ):
        if threads:  # a Ray actor: its share of the cores, not all of them
            import torch

            torch.set_num_threads(threads)
        self.n_labels = len(cfg.label_names)
        self.embed = load_embedder(encoder, prefix=cfg.student.prefix)
        self.teachers = {}
        if "setfit" in cfg.label.teachers:
            from commentclf.teachers.setfit import load_setfit, setfit_proba

            setfit = load_setfit(setfit_dir)
            self.teachers["setfit"] = lambda texts: setfit_proba(setfit, texts, cfg.setfit.prefix)
        if "llm" in cfg.label.teachers:
            from commentclf.llm.head import load_llm

            llm = load_llm(llm_dir, quantize=cfg.llm.quantize)
            self.teachers["llm"] = lambda texts: llm.score(texts, cfg.llm.score_batch_size)
        if "llm_server" in cfg.label.teachers:  # built by the caller: it holds the few-shot rows and the cache
            self.teachers["llm_server"] = server

    def __call__(self, texts: list[str], needs_models: np.ndarray) -> dict[str, np.ndarray]:
        scores = {"embedding": self.embed(texts)}
        rows = np.flatnonzero(needs_models)
        for name, proba in self.teachers.items():
            p = np.full((len(texts), self.n_labels), np.nan)
            if len(rows):
                p[rows] = proba([texts[i] for i in rows])
            scores[name] = p
        return scores


def score_rows(scorer: RowScorer, texts: list[str], needs_models: np.ndarray, part_rows: int) -> dict[str, np.ndarray]:
    """The local engine: `scorer` over consecutive parts of `part_rows` rows, concatenated."""
    starts = range(0, len(texts), part_rows)
    parts = [
        scorer(texts[i : i + part_rows], needs_models[i : i + part_rows])
        for i in track(starts, description=f"scoring {len(texts)} rows", total=len(starts))
    ]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
