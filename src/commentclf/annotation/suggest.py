"""Which pool comments to label next (`suggest.strategy`).

Query strategies are a few lines of numpy and scikit-learn each. small-text (the maintained active-learning
library) does not fit the pinned stack: its 1.4.1 release pulls torchtext, which has no wheel for our torch,
and its 2.x releases are pre-releases (docs/design.md).

Every strategy takes the candidates' model probabilities (n, labels) and, where it needs them, their e5
embeddings (n, dim, L2-normalised), and returns indices into the candidates, best first. The candidates are
the pool after the split removed every labelled and test text, so nothing labelled is ever suggested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from commentclf.config import SuggestConfig
from commentclf.errors import DataError


def margins(proba: np.ndarray) -> np.ndarray:
    """Gap between the two most probable labels of each row: small = the model hesitates."""
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def by_margin(proba: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(margins(proba), kind="stable")[:k]


def by_minority(
    proba: np.ndarray, embeddings: np.ndarray, minority_embeddings: np.ndarray, k: int, confident: float
) -> np.ndarray:
    """Nearest neighbours of the labelled minority examples (cosine), leaving out rows the model already gives
    a label with probability >= `confident` (labelling those teaches it nothing)."""
    if len(minority_embeddings) == 0:
        raise DataError("strategy `minority` needs labelled examples of the minority label; there are none")
    similarity = (embeddings @ minority_embeddings.T).max(axis=1)
    order = np.argsort(-similarity, kind="stable")
    unsure = proba.max(axis=1) < confident
    return order[unsure[order]][:k]


def by_diversity(proba: np.ndarray, embeddings: np.ndarray, k: int, pool_factor: int, seed: int) -> np.ndarray:
    """k-means (k clusters) over the `pool_factor * k` most uncertain rows; from each cluster the row nearest
    its centre: uncertain comments that are not near-copies of each other."""
    from sklearn.cluster import KMeans

    candidates = by_margin(proba, pool_factor * k)
    if len(candidates) <= k:
        return candidates
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(embeddings[candidates])
    distance = km.transform(embeddings[candidates])
    picks = [candidates[np.flatnonzero(km.labels_ == c)[distance[km.labels_ == c, c].argmin()]] for c in range(k)]
    gap = margins(proba)
    return np.array(sorted(picks, key=lambda i: gap[i]))


@dataclass
class SuggestInput:
    proba: np.ndarray
    """(n, labels) model probabilities of the candidates."""
    embeddings: np.ndarray
    """(n, dim) L2-normalised embeddings of the candidates."""
    minority_embeddings: np.ndarray
    """(m, dim) L2-normalised embeddings of the labelled minority examples."""


def suggest(data: SuggestInput, cfg: SuggestConfig, seed: int) -> tuple[np.ndarray, list[str]]:
    """`cfg.batch_size` candidate indices and the strategy that picked each. `mixed` fills `cfg.shares` of the
    batch with each strategy in turn (what one already picked does not count twice), the rest by margin."""
    n = len(data.proba)
    k = min(cfg.batch_size, n)

    def pick(name: str, count: int, taken: set[int]) -> list[int]:
        if count <= 0:
            return []
        if name == "margin":
            order = by_margin(data.proba, n)
        elif name == "minority":
            order = by_minority(data.proba, data.embeddings, data.minority_embeddings, n, cfg.confident)
        elif name == "diverse":
            keep = np.array([i for i in range(n) if i not in taken])
            order = keep[by_diversity(data.proba[keep], data.embeddings[keep], count, cfg.diverse_pool_factor, seed)]
        else:  # random
            order = np.random.default_rng(seed).permutation(n)
        return [int(i) for i in order if int(i) not in taken][:count]

    if cfg.strategy == "mixed":
        plan = [(name, round(share * k)) for name, share in cfg.shares.items()] + [("margin", k)]
    else:
        plan = [(cfg.strategy, k)]
    chosen: list[int] = []
    by: list[str] = []
    for name, count in plan:
        new = pick(name, min(count, k - len(chosen)), set(chosen))
        chosen += new
        by += [name] * len(new)
    return np.array(chosen, dtype=int), by


def needs_embeddings(cfg: SuggestConfig) -> bool:
    """Whether the strategy (or a share of `mixed`) reads e5 embeddings: `minority` and `diverse` do."""
    return cfg.strategy in ("minority", "diverse") or (
        cfg.strategy == "mixed" and bool({"minority", "diverse"} & set(cfg.shares))
    )
