"""SetFit on the real e5 asset, a few steps: the head's columns follow the params' label order, the head's C
is chosen among the given ones on dev, and the saved model loads and has the same bytes each time."""

import json

import numpy as np

from commentclf.teachers.setfit import load_setfit, setfit_proba, train_setfit
from conftest import section

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]
TEXTS = [
    "Il faut armer l'Ukraine.",
    "Slava Ukraini !",
    "L'OTAN a provoqué la Russie.",
    "Arrêtons les livraisons d'armes.",
    "Le site est en panne.",
    "Belle photo de une.",
]
GOLD = ["pro_ukraine", "pro_ukraine", "pro_russia", "pro_russia", "off_topic", "off_topic"]
CFG = section("setfit", max_steps=2, batch_size=4, head_c=[0.1, 10.0], max_length=32)


def test_trains_saves_and_predicts_in_label_order(e5_folder, tmp_path):
    model, report, steps = train_setfit(
        str(e5_folder), TEXTS, GOLD, TEXTS, GOLD, LABELS, "pro_russia", CFG, 0, tmp_path
    )
    assert report["head_c"] in (0.1, 10.0) and set(report["head_c_dev_macro_f1"]) == {0.1, 10.0}
    assert report["n"] == 6 and steps and all("embedding_loss" in s for s in steps)
    config = list(json.loads((tmp_path / "config_setfit.json").read_text()))
    assert config == sorted(config)
    loaded = load_setfit(tmp_path)
    p = setfit_proba(loaded, TEXTS, CFG.prefix)
    assert p.shape == (6, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.allclose(p, setfit_proba(model, TEXTS, CFG.prefix), atol=1e-5)
    # columns follow LABELS: the training rows of each label score highest in their own column on average
    for j, label in enumerate(LABELS):
        rows = [i for i, g in enumerate(GOLD) if g == label]
        assert p[rows, j].mean() > 1 / 3


def test_a_label_missing_from_training_gets_a_zero_column(e5_folder, tmp_path):
    texts, gold = TEXTS[:2] + TEXTS[4:], GOLD[:2] + GOLD[4:]  # no pro_russia row
    model, _, _ = train_setfit(str(e5_folder), texts, gold, texts, gold, LABELS, "pro_russia", CFG, 0, tmp_path)
    p = setfit_proba(model, TEXTS, CFG.prefix)
    assert p.shape == (6, 3) and (p[:, 1] == 0).all() and np.allclose(p.sum(1), 1, atol=1e-5)
    assert setfit_proba(model, [], CFG.prefix).shape == (0, 3)
