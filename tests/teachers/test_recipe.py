"""The recipe rule: replays of the distillation on the seed choose how the student learns from the pool."""

import numpy as np
import polars as pl
import pytest

import commentclf.teachers.recipe as recipe_module
from commentclf.config import parse_params
from commentclf.errors import DataError
from commentclf.teachers.labelling import LabellingRows, RowScores, label_pool
from commentclf.teachers.recipe import PRIOR_CORRECTIONS, Recipe, Replay, build_replays, choose_recipe
from conftest import base_params

K = 3


def cfg(**label):
    params = base_params()
    params["label"] |= {"teachers": ["logreg", "tfidf", "spread"], "recipe": "auto", **label}
    return parse_params(params)


def seed_rows(n_per_label: int, rng):
    """Separable embeddings and texts that name their label, so every cheap teacher can learn them."""
    y = np.repeat(np.arange(K), n_per_label)
    emb = np.eye(K)[y] * 3 + rng.normal(0, 1.0, (len(y), K))
    texts = [f"word{label} comment {i}" for i, label in enumerate(y)]
    return texts, emb, y


def hand_made_replays(pool_targets, rng, n=4) -> list[Replay]:
    """Replays whose stand-in pool carries the given (hand-made) ensemble distributions."""
    centers = rng.normal(0, 1.0, (K, 8))

    def blob(m):
        y = rng.integers(0, K, m)
        return centers[y] + rng.normal(0, 1.0, (m, 8)), y

    out = []
    for _ in range(n):
        (gx, gy), (px, py), (ex, ey) = blob(30), blob(200), blob(200)
        p = pool_targets(py, rng)
        out.append(
            Replay(
                gx,
                gy,
                px,
                dict.fromkeys(PRIOR_CORRECTIONS, p),
                ex,
                ey,
                dict.fromkeys(PRIOR_CORRECTIONS, np.eye(K)[ey]),
                {},
            )
        )
    return out


def truth_second(py, rng):
    """The argmax is always wrong, but the true label keeps 0.40 on every row: the distribution knows more
    than its argmax, so soft targets should win."""
    p = np.full((len(py), K), 0.15)
    wrong = (py + rng.integers(1, K, len(py))) % K
    p[np.arange(len(py)), wrong] = 0.45
    p[np.arange(len(py)), py] = 0.40
    return p / p.sum(1, keepdims=True)


def right_but_leaning(py, rng):
    """The argmax is right, but every row leans 0.40 towards the last label: a soft target teaches that
    lean, a hard one does not, so hard targets should win."""
    p = np.full((len(py), K), 0.05)
    p[np.arange(len(py)), py] = 0.5
    p[:, K - 1] += 0.40
    p[py == K - 1, K - 1] = 0.9
    return p / p.sum(1, keepdims=True)


def test_the_choice_follows_the_seed_evidence():
    rng = np.random.default_rng(0)
    soft, report = choose_recipe(hand_made_replays(truth_second, rng), cfg())
    hard, _ = choose_recipe(hand_made_replays(right_but_leaning, rng), cfg())
    assert soft.target == "soft" and hard.target == "hard"
    best = max(report["candidates"], key=lambda c: c["macro_f1"])
    assert report["chosen"] == {k: best[k] for k in report["chosen"]}
    assert len(report["candidates"]) == len(recipe_module.candidates())


def test_replays_score_rows_that_no_teacher_or_ensemble_saw(monkeypatch):
    """In each replay the gold, stand-in pool and scored rows never meet, together they are the seed, and the
    teachers are fitted on the gold rows' texts and labels alone."""
    texts, emb, y = seed_rows(12, np.random.default_rng(1))
    fitted_on = []
    real_fit = recipe_module.fit_cheap_teacher

    def spy(name, lc, seed, k, fit_texts, fit_emb, fit_y, unlabelled):
        fitted_on.append((set(fit_texts), fit_y.tolist()))
        return real_fit(name, lc, seed, k, fit_texts, fit_emb, fit_y, unlabelled)

    monkeypatch.setattr(recipe_module, "fit_cheap_teacher", spy)
    replays = build_replays(texts, emb, y, cfg())
    assert len(replays) == recipe_module.FOLDS * recipe_module.REPEATS
    for i, r in enumerate(replays):
        gold, pool, scored = (set(r.index[part].tolist()) for part in ("gold", "pool", "eval"))
        assert not (gold & pool or gold & scored or pool & scored)
        assert gold | pool | scored == set(range(len(y)))
        for seen, labels in fitted_on[3 * i : 3 * i + 3]:  # logreg, tfidf, spread
            assert seen == {texts[j] for j in r.index["gold"]} and labels == y[r.index["gold"]].tolist()
        assert set(r.pool_p) == set(PRIOR_CORRECTIONS) and r.pool_p["none"].shape == (len(pool), K)


def test_a_seed_too_small_to_replay_is_refused_by_name():
    texts, emb, y = seed_rows(9, np.random.default_rng(2))
    with pytest.raises(DataError, match="label.recipe: fixed"):
        build_replays(texts, emb, y, cfg())


def test_only_seed_rows_reach_the_choice(monkeypatch):
    """llm_label chooses the recipe on train + dev; not a pool row (nor any other split) reaches it."""
    rng = np.random.default_rng(3)
    texts, emb, y = seed_rows(12, rng)
    c = cfg()
    names = c.label_names
    train = pl.DataFrame({"text": texts[::2], "label": [names[i] for i in y[::2]]})
    dev = pl.DataFrame({"text": texts[1::2], "label": [names[i] for i in y[1::2]]})
    pool = pl.DataFrame({"id": list(range(20)), "text": [f"pool comment {i}" for i in range(20)]})
    rows = LabellingRows.from_splits(train, dev, pool, c)
    seen = []

    def spy(seed_texts, seed_emb, seed_y, params):
        seen.extend(seed_texts)
        return recipe_module.build_replays(seed_texts, seed_emb, seed_y, params)

    monkeypatch.setattr("commentclf.teachers.labelling.build_replays", spy)
    embedding = np.vstack([np.eye(K)[rows.y] * 3, rng.normal(0, 1, (len(pool), K))])
    labelled = label_pool(rows, RowScores({"embedding": embedding}, "local", 1.0), c)
    assert sorted(seen) == sorted(texts)
    assert labelled.report["recipe"]["mode"] == "auto" and labelled.recipe.prior_correction in PRIOR_CORRECTIONS
    assert labelled.ensemble.prior_bias is not None
    kept = labelled.pseudo.filter(pl.col("kept"))
    assert (kept["confidence"] >= labelled.recipe.floor).all()


def test_fixed_recipe_is_the_params_and_targets_follow_it():
    params = base_params()
    params["label"] |= {"recipe": "fixed", "prior_correction": "nll", "confidence_floor": 0.6}
    params["student"] |= {"pseudo_target": "hard", "pseudo_floor": 0.2, "seed_share": 0.5}
    r = Recipe.fixed(parse_params(params))
    assert (r.prior_correction, r.target, r.temperature, r.floor, r.seed_share) == ("nll", "hard", 1.0, 0.6, 0.5)
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    keep, t = r.targets(p)
    assert keep.tolist() == [True, False] and t.tolist() == [[1.0, 0.0, 0.0]]
    keep, t = Recipe("none", "soft", 0.5, 0.0, None).targets(p)
    assert keep.all() and np.allclose(t.sum(1), 1) and t[0, 0] > 0.7 and t.argmax(1).tolist() == [0, 0]
    gold_w, pool_w = r.row_weights(100, 300)
    assert gold_w * 100 / (gold_w * 100 + pool_w * 300) == pytest.approx(0.5)
    assert Recipe("none", "soft", 1.0, 0.0, None).row_weights(100, 300) == (1.0, 1.0)


def test_recipe_round_trips_and_a_missing_file_says_which_stage(tmp_path):
    r = Recipe("macro_f1", "soft", 0.25, 0.0, 0.5)
    r.save(tmp_path / "recipe.json")
    assert Recipe.load(tmp_path / "recipe.json") == r
    with pytest.raises(DataError, match="llm_label"):
        Recipe.load(tmp_path / "absent.json")
