"""`review`: the labelled rows the cross-fitted teachers doubt most, ranked by cleanlab."""

import numpy as np
import pytest

from commentclf.annotation.review import rank_label_issues
from commentclf.errors import DataError


def teachers_and_labels(n=300, flip_share=0.1, seed=0):
    """Out-of-fold probabilities of a decent 3-class model (right 80 % of the time, unsure when wrong), the
    true labels, and given labels with `flip_share` of them planted wrong."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.5, 0.2, 0.3])
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 2.0
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    flipped = rng.choice(n, int(flip_share * n), replace=False)
    given = y.copy()
    given[flipped] = (given[flipped] + rng.integers(1, 3, len(flipped))) % 3
    return proba, given, set(flipped.tolist())


def test_planted_wrong_labels_come_first():
    proba, given, flipped = teachers_and_labels()
    review = rank_label_issues(proba, given)
    top = set(review.order[: len(flipped)].tolist())
    assert len(top & flipped) / len(flipped) >= 0.6  # random order would find 10 %
    assert sorted(review.order.tolist()) == list(range(len(given)))  # every row ranked once
    assert np.allclose(review.quality, proba[np.arange(len(given)), given])  # self-confidence
    assert 0 < review.flagged < len(given) / 2


def test_a_label_without_rows_or_a_broken_row_is_refused():
    proba, given, _ = teachers_and_labels(30)
    with pytest.raises(DataError, match=r"label indices \[1\] have no labelled row"):
        rank_label_issues(proba, np.where(given == 1, 0, given))
    proba[3, 0] = np.nan
    with pytest.raises(DataError, match="one finite probability row per labelled row"):
        rank_label_issues(proba, given)
