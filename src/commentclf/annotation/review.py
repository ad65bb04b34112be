"""Which labelled rows to check again (`suggest.review`): the seed rows whose given label the cross-fitted
teachers doubt most.

The ranking is cleanlab's (confident learning, Northcutt et al. 2021) over the out-of-fold probabilities that
llm_label computes for every seed row it cross-fits on (train and dev; the calib rows stay out of every model,
so they are not reviewed here): `get_label_quality_scores` orders every row, `find_label_issues` counts the rows
it would call mislabelled. A row goes to an annotator, who keeps or changes its label; `annotations import
--accept-corrections` applies the changes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from commentclf.errors import DataError


@dataclass
class Review:
    order: np.ndarray
    """Row indices, most doubtful first (the lowest label quality)."""
    quality: np.ndarray
    """Each row's label quality score in [0, 1], in row order: the teachers' probability of the given label."""
    flagged: int
    """How many rows cleanlab's `find_label_issues` calls mislabelled (its own count, not a threshold of ours)."""


def rank_label_issues(proba: np.ndarray, given: np.ndarray) -> Review:
    """Rank the rows of out-of-fold probabilities `proba` (n, labels) by how much they doubt the `given` label
    indices. Every label needs a row: cleanlab estimates how often each label is given to another's rows."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    proba, given = np.asarray(proba, dtype=float), np.asarray(given)
    if len(proba) != len(given) or proba.ndim != 2 or not np.isfinite(proba).all():
        raise DataError(f"review needs one finite probability row per labelled row (got {proba.shape}, {len(given)})")
    missing = sorted(set(range(proba.shape[1])) - set(given.tolist()))
    if missing:
        raise DataError(f"review: label indices {missing} have no labelled row; every label needs at least one")
    proba = proba / proba.sum(1, keepdims=True)
    quality = get_label_quality_scores(given, proba, method="self_confidence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab's notes on small classes
        flagged = int(find_label_issues(given, proba, filter_by="prune_by_noise_rate").sum())
    return Review(np.argsort(quality, kind="stable"), quality, flagged)
