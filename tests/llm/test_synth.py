"""Each synthetic-data filter, with a case that triggers it (a bag-of-words embedder keeps them exact)."""

import re
from collections import Counter

import numpy as np
import polars as pl

from commentclf.config import Label
from commentclf.llm.synth import Candidate, filter_candidates, plan_requests
from conftest import section

VOCAB: dict[str, int] = {}


def bow_embed(texts):
    """Normalised word counts: identical word bags have cosine 1, unrelated texts ~0."""
    rows = []
    for text in texts:
        counts = Counter(re.findall(r"\w+", text.lower()))
        v = np.zeros(512)
        for word, n in counts.items():
            v[VOCAB.setdefault(word, len(VOCAB)) % 512] += n
        rows.append(v / (np.linalg.norm(v) or 1))
    return np.array(rows)


CFG = section("synth", min_chars=20, max_chars=200, max_example_similarity=0.9, max_duplicate_similarity=0.9)
EXAMPLE = "Il faut livrer des armes à Kyiv, et vite."


def cand(raw, label="pro_ukraine", truncated=False, example=EXAMPLE):
    return Candidate(label=label, source_id="s1", example=example, raw=raw, truncated=truncated)


def reasons(cands, seed_texts=(), predict_label=None):
    filter_candidates(cands, CFG, list(seed_texts), bow_embed, predict_label)
    return [c.reason for c in cands]


def test_each_filter_triggers():
    cands = [
        cand('Les Ukrainiens méritent notre soutien total cet hiver.", "label": "pro_ukraine"}'),  # kept
        cand("Un texte coupé par la limite de", truncated=True),  # truncated
        cand("Bien sûr ! Voici un commentaire.", truncated=False),  # unparsable (no closing quote)
        cand('Un commentaire tout à fait correct ici."}'),  # missing_label
        cand('Un commentaire qui penche vers Moscou.", "label": "pro_russia"}'),  # wrong_label
        cand('Trop court.", "label": "pro_ukraine"}'),  # too_short
        cand("x" * 250 + '", "label": "pro_ukraine"}'),  # too_long
        cand(EXAMPLE + '", "label": "pro_ukraine"}'),  # near_copy (exact)
        cand('Vite, il faut livrer des armes à Kyiv et.", "label": "pro_ukraine"}'),  # near_copy (same words)
        cand('Soutenir Kyiv coûte moins cher que la défaite.", "label": "pro_ukraine"}'),  # duplicate of seed
        cand(
            'Les Ukrainiens méritent notre soutien total cet hiver !", "label": "pro_ukraine"}'
        ),  # duplicate of kept #0
    ]
    got = reasons(cands, seed_texts=["Soutenir Kyiv coûte moins cher que la défaite."])
    assert got == [
        None,
        "truncated",
        "unparsable",
        "missing_label",
        "wrong_label",
        "too_short",
        "too_long",
        "near_copy",
        "near_copy",
        "duplicate",
        "duplicate",
    ]
    assert cands[0].text == "Les Ukrainiens méritent notre soutien total cet hiver."


def test_label_check_drops_disagreements():
    cands = [
        cand('Les Ukrainiens méritent notre soutien total cet hiver.", "label": "pro_ukraine"}'),
        cand('Le prix du pain augmente encore dans mon quartier.", "label": "pro_ukraine"}'),
    ]
    got = reasons(
        cands, predict_label=lambda texts: ["pro_ukraine" if "Ukrainiens" in t else "off_topic" for t in texts]
    )
    assert got == [None, "label_mismatch"]


def test_plan_requests_cycles_through_examples_deterministically():
    train = pl.DataFrame({"id": ["a", "b", "c"], "text": ["t1", "t2", "t3"], "label": ["x", "x", "y"]})
    labels = [Label(name="x", description="d"), Label(name="y", description="d"), Label(name="z", description="d")]
    plan = plan_requests(train, labels, n_per_class=3, seed=1)
    assert [(lab.name, row["id"]) for lab, row in plan] == [
        (lab.name, row["id"]) for lab, row in plan_requests(train, labels, 3, 1)
    ]
    assert Counter(lab.name for lab, _ in plan) == {"x": 3, "y": 3}  # z has no example: nothing asked
    assert {row["id"] for lab, row in plan if lab.name == "x"} == {"a", "b"}
