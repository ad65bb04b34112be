import numpy as np
import pytest

from commentclf.errors import DataError
from commentclf.teachers.cheap import crossfit, fit_cheap_teacher, full_proba, n_folds, save_teachers, score_teachers


def test_crossfit_never_lets_a_row_score_itself():
    """A teacher that memorises its training rows would score them perfectly: the folds must keep every
    row out of the model that predicts it, and every row must get a prediction."""
    y = np.array([0, 1, 2] * 6)
    seen = []

    def fit(index, labels):
        seen.append(set(index.tolist()))
        return set(index.tolist())

    def predict(trained_on, index):
        assert not trained_on & set(index.tolist()), "a held-out row was in its own model's training rows"
        p = np.zeros((len(index), 3))
        p[:, 0] = 1.0
        return p

    oof, splits = crossfit(fit, predict, y, folds=4, seed=0)
    held = np.concatenate([h for _, h in splits])
    assert sorted(held.tolist()) == list(range(len(y)))  # each row held out exactly once
    assert (oof[:, 0] == 1).all() and len(seen) == 4


def test_folds_follow_the_rarest_label_and_refuse_a_label_with_one_row():
    assert n_folds(np.array([0] * 10 + [1] * 3), 5) == 3
    with pytest.raises(DataError, match="rarest has 1"):
        n_folds(np.array([0] * 10 + [1]), 5)


WORDS = ["kyiv brave", "nato provoked", "weather today"]  # one text per label: the tf-idf view's signal


def fit_on_a_separable_task(name: str):
    """(teacher fitted on 36 rows whose embeddings and words both carry the label, its out-of-fold
    probabilities, the labels, the pool's embeddings)."""
    from conftest import section

    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 12)
    centres = np.eye(3, 8) * 3
    emb = centres[y] + rng.normal(0, 0.3, (len(y), 8))
    texts = [f"{WORDS[label]} comment {i}" for i, label in enumerate(y)]
    pool_emb = centres[[0, 1, 2]] + rng.normal(0, 0.3, (3, 8))
    cfg = section("label", folds=3, logreg_c=1.0, tfidf_c=10.0, spread_neighbors=5)
    model, oof = fit_cheap_teacher(name, cfg, 0, 3, texts, emb, y, pool_emb)
    return model, oof, y, pool_emb


@pytest.mark.parametrize("name", ["logreg", "tfidf", "spread"])
def test_cheap_teachers_learn_a_separable_task_out_of_fold(name):
    model, oof, y, pool_emb = fit_on_a_separable_task(name)
    assert oof.shape == (len(y), 3) and np.allclose(oof.sum(1), 1)
    assert (oof.argmax(1) == y).mean() > 0.9  # out-of-fold, yet right: the views carry the label
    new = score_teachers([name], WORDS, {name: model}, lambda texts: pool_emb, {}, 3)[name]
    assert new.argmax(1).tolist() == [0, 1, 2]


def test_saved_teachers_hold_no_memory_address_and_score_the_same(tmp_path):
    """A memory address in the file would make every rerun of llm_label a new output for DVC."""
    import joblib

    model = fit_on_a_separable_task("tfidf")[0]
    before = model.predict_proba(WORDS)
    save_teachers({"tfidf": model}, tmp_path / "t.joblib")
    loaded = joblib.load(tmp_path / "t.joblib")["tfidf"]
    assert not any("_stop_words_id" in vars(part) for _, part in loaded.steps[0][1].transformer_list)
    assert np.array_equal(loaded.predict_proba(WORDS), before)


def test_full_proba_keeps_a_column_for_a_label_a_fold_lacked():
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0], [0.1], [0.9]]), [0, 2, 0, 2])
    p = full_proba(model, np.array([[0.0]]), 3)
    assert p.shape == (1, 3) and p[0, 1] == 0 and np.isclose(p.sum(), 1)
