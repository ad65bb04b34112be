"""Frozen sentence embeddings (for similarity filters), from any sentence-transformers folder or hub id."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def load_embedder(path: str, prefix: str = "query: ", batch_size: int = 32) -> Callable[[list[str]], np.ndarray]:
    """A function texts -> L2-normalised embeddings (n, dim)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
        return model.encode([prefix + t for t in texts], normalize_embeddings=True, batch_size=batch_size)

    return embed
