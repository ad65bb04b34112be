"""The student's training set follows llm_label's recipe: which pool rows, which targets, which weights."""

import numpy as np
import polars as pl
import pytest

from commentclf.config import parse_params
from commentclf.student.distill import distillation_set
from commentclf.teachers.recipe import Recipe
from conftest import base_params

CFG = parse_params(base_params())
LABELS = CFG.label_names


def files(tmp_path):
    train = pl.DataFrame({"text": ["a", "b", "c"], "label": LABELS})
    p = np.array([[0.8, 0.1, 0.1], [0.3, 0.45, 0.25], [0.2, 0.2, 0.6], [0.34, 0.33, 0.33]])
    pseudo = pl.DataFrame(
        {
            "text": ["p0", "p1", "p2", "p3"],
            "label": [LABELS[i] for i in p.argmax(1)],
            "confidence": p.max(1),
            **{f"proba_{label}": p[:, j] for j, label in enumerate(LABELS)},
        }
    )
    pseudo.write_parquet(tmp_path / "pseudo.parquet")
    return train, p


def test_hard_recipe_keeps_rows_above_its_floor_as_one_hot_with_the_seed_share(tmp_path):
    train, p = files(tmp_path)
    recipe = Recipe("none", "hard", 1.0, 0.5, 0.5)
    d = distillation_set(train, train, tmp_path / "pseudo.parquet", tmp_path / "none", recipe, "body", CFG)
    assert d.rows == {"train": 3, "pseudo": 2} and d.data.texts == ["a", "b", "c", "p0", "p2"]
    assert d.data.targets[3:].tolist() == [[1, 0, 0], [0, 0, 1]]
    w = d.data.weights
    assert w[:3].sum() / w.sum() == pytest.approx(0.5) and w.mean() == pytest.approx(1.0)


def test_soft_recipe_trains_every_row_towards_the_sharpened_distribution(tmp_path):
    train, p = files(tmp_path)
    recipe = Recipe("none", "soft", 0.5, 0.0, None)
    d = distillation_set(train, train, tmp_path / "pseudo.parquet", tmp_path / "none", recipe, "body", CFG)
    assert d.rows == {"train": 3, "pseudo": 4} and (d.data.weights == 1).all()
    expected = p**2 / (p**2).sum(1, keepdims=True)
    assert np.allclose(d.data.targets[3:], expected) and d.pool_rows == slice(3, 7)
    assert d.data.targets[:3].tolist() == np.eye(3).tolist()
