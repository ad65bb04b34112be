"""Cheap teachers over the seed, cross-fitted so that every seed row is scored by a model that never saw it.

Three views of a comment, each a scikit-learn model fitted in seconds:
* `logreg`: frozen e5 embeddings + class-balanced logistic regression (standardised features);
* `tfidf`: word and character n-gram TF-IDF + class-balanced logistic regression (a different view from
  the encoder's: it sees names, hashtags and slogans the embedding averages away);
* `spread`: label spreading over a k-nearest-neighbour graph of the e5 embeddings of the seed and the
  pool (sklearn's `LabelSpreading`): the pool's own structure carries the seed's labels.

`crossfit` gives each of them out-of-fold probabilities on every seed row (what the ensemble is fitted
on: 450 rows instead of the 68 dev rows) and a model refitted on the whole seed (what labels the pool).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading

from commentclf.config import LabelConfig
from commentclf.errors import DataError

CHEAP_TEACHERS = ("logreg", "tfidf", "spread")
"""Teachers fitted here; `setfit` and `llm` are the pipeline's own stages."""


class SpreadTeacher:
    """LabelSpreading with the unlabelled rows (pool, held-out seed rows) in the graph; predict_proba of new
    rows averages their labelled-graph neighbours' spread distributions."""

    def __init__(self, n_neighbors: int, alpha: float):
        self.n_neighbors, self.alpha = n_neighbors, alpha

    def fit(self, x: np.ndarray, y: np.ndarray, unlabeled: np.ndarray | None = None) -> SpreadTeacher:
        unlabeled = np.zeros((0, x.shape[1]), dtype=x.dtype) if unlabeled is None else unlabeled
        k = min(self.n_neighbors, len(x) + len(unlabeled) - 1)
        self.model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=self.alpha, max_iter=100)
        self.model.fit(np.vstack([x, unlabeled]), np.concatenate([y, -np.ones(len(unlabeled), dtype=int)]))
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = self.model.predict_proba(x)
        # a row whose neighbours carry no label mass at all gets 0/0: uniform is the honest answer
        bad = ~np.isfinite(p).all(1) | (p.sum(1) <= 0)
        p[bad] = 1.0 / p.shape[1]
        return p


def make_teacher(name: str, cfg: LabelConfig, seed: int):
    """An unfitted teacher: fit(x, y) / predict_proba(x). `tfidf` takes texts, the others embeddings."""
    if name == "logreg":
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=cfg.logreg_c, class_weight="balanced", max_iter=5000, random_state=seed),
        )
    if name == "tfidf":
        words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
        return make_pipeline(
            make_union(words, chars),
            LogisticRegression(C=cfg.tfidf_c, class_weight="balanced", max_iter=5000, random_state=seed),
        )
    if name == "spread":
        return SpreadTeacher(cfg.spread_neighbors, cfg.spread_alpha)
    raise ValueError(f"not a cheap teacher: {name!r} (one of {CHEAP_TEACHERS})")


def save_teachers(fitted: dict, path: Path) -> None:
    """The fitted cheap teachers as one joblib file, byte-identical for identical fits. A TfidfVectorizer keeps
    `_stop_words_id`, the memory address of its stop-word list (a cache of a check it redoes when absent); an
    address differs in every process, so each rerun of llm_label wrote a new file and DVC reran the benchmark
    after it for nothing."""
    for model in fitted.values():
        # a pipeline's get_params lists every step it holds, nested ones included (the fitted objects themselves)
        parts = model.get_params().values() if hasattr(model, "get_params") else ()
        for part in parts:
            if isinstance(part, TfidfVectorizer):
                vars(part).pop("_stop_words_id", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(fitted, path)


def full_proba(model, x, n_labels: int) -> np.ndarray:
    """predict_proba with one column per label, also when a fold lacked a label (its column stays 0)."""
    p = np.zeros((len(x), n_labels))
    p[:, np.asarray(model.classes_)] = model.predict_proba(x)
    return p


def n_folds(y: np.ndarray, folds: int) -> int:
    """`folds`, lowered to the rarest label's count (stratified folds need one row of it in each)."""
    rarest = int(np.bincount(y).min(initial=len(y))) if len(y) else 0
    if rarest < 2:
        raise DataError(f"cross-fitting needs at least 2 seed rows of every label; the rarest has {rarest}")
    return min(folds, rarest)


def crossfit(
    fit: Callable[[np.ndarray, np.ndarray], object],
    predict: Callable[[object, np.ndarray], np.ndarray],
    y: np.ndarray,
    folds: int,
    seed: int,
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Out-of-fold predictions on every row: for each stratified fold, `fit(train_index, y_train)` and
    `predict(model, held_out_index)`. Returns the (n, k) out-of-fold matrix and the (train, held-out) index
    pairs used (tests check a row is never in both). The caller refits on all rows for new data."""
    k = n_folds(y, folds)
    splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    oof = None
    for train, held_out in splits:
        p = predict(fit(train, y[train]), held_out)
        oof = np.zeros((len(y), p.shape[1])) if oof is None else oof
        oof[held_out] = p
    return oof, splits


def fit_cheap_teacher(
    name: str,
    cfg: LabelConfig,
    seed: int,
    n_labels: int,
    seed_texts: list[str],
    seed_emb: np.ndarray,
    y: np.ndarray,
    pool_emb: np.ndarray,
) -> tuple[object, np.ndarray]:
    """(teacher fitted on the whole seed, its out-of-fold probabilities on the seed rows)."""

    def features(index):
        return [seed_texts[i] for i in index] if name == "tfidf" else seed_emb[index]

    def fit(index, labels):
        model = make_teacher(name, cfg, seed)
        if name == "spread":  # held-out seed rows and the pool are unlabelled nodes of the graph
            held_out = np.setdiff1d(np.arange(len(y)), index)
            return model.fit(seed_emb[index], labels, np.vstack([seed_emb[held_out], pool_emb]))
        return model.fit(features(index), labels)

    def predict(model, index):
        return full_proba(model, features(index), n_labels)

    oof, _ = crossfit(fit, predict, y, cfg.folds, seed)
    everything = np.arange(len(y))
    model = make_teacher(name, cfg, seed)
    if name == "spread":
        model.fit(seed_emb, y, pool_emb)
    else:
        model.fit(features(everything), y)
    return model, oof


def teacher_input(name: str, texts: list[str], emb: np.ndarray):
    """What a fitted cheap teacher predicts from: texts for tfidf, embeddings for the others."""
    return texts if name == "tfidf" else emb


def score_teachers(
    names: list[str],
    texts: list[str],
    fitted: dict[str, object],
    embed: Callable[[list[str]], np.ndarray] | None,
    others: dict[str, Callable[[list[str]], np.ndarray]],
    n_labels: int,
) -> dict[str, np.ndarray]:
    """Each teacher's probabilities on `texts`: the fitted cheap teachers (embedding the texts once, if one
    needs it) and the pipeline's models given as callables (`others`: "setfit" / "llm" -> texts -> proba)."""
    emb = embed(texts) if embed is not None and any(n in ("logreg", "spread") for n in names) else None
    return {
        n: full_proba(fitted[n], teacher_input(n, texts, emb), n_labels) if n in CHEAP_TEACHERS else others[n](texts)
        for n in names
    }
