"""Query strategies on hand-made embeddings, Label Studio files, and merging answers into the labelled file."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
import pytest

from commentclf.annotation.label_studio import label_config, merge_answers, read_answers, tasks
from commentclf.annotation.suggest import SuggestInput, by_diversity, by_margin, by_minority, suggest
from commentclf.errors import DataError
from conftest import section

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]


def unit(rows):
    rows = np.asarray(rows, dtype=float)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_margin_picks_the_smallest_gaps_first():
    proba = np.array([[0.9, 0.05, 0.05], [0.4, 0.38, 0.22], [0.5, 0.1, 0.4], [0.34, 0.33, 0.33]])
    assert by_margin(proba, 2).tolist() == [3, 1]


def test_minority_picks_the_nearest_neighbours_the_model_is_unsure_of():
    minority = unit([[1, 0, 0]])
    embeddings = unit([[1, 0.05, 0], [1, 0.1, 0], [0, 1, 0], [1, 0.3, 0], [0, 0, 1]])
    proba = np.array([[0.2, 0.75, 0.05], [0.98, 0.01, 0.01], [0.4, 0.3, 0.3], [0.5, 0.3, 0.2], [0.4, 0.3, 0.3]])
    # row 1 is as near as row 0 but the model is already sure of it (0.98 >= 0.9): left out
    assert by_minority(proba, embeddings, minority, 3, confident=0.9).tolist() == [0, 3, 2]
    with pytest.raises(DataError, match="minority"):
        by_minority(proba, embeddings, minority[:0], 3, confident=0.9)


def test_diverse_takes_one_per_cluster():
    rng = np.random.default_rng(0)
    centres = unit(np.eye(3))
    embeddings = unit(np.repeat(centres, 10, axis=0) + rng.normal(0, 0.01, (30, 3)))
    proba = np.full((30, 3), 1 / 3) + rng.normal(0, 0.01, (30, 3))
    picks = by_diversity(np.abs(proba), embeddings, k=3, pool_factor=10, seed=0)
    assert sorted(i // 10 for i in picks) == [0, 1, 2]  # one from each of the three groups


def test_suggest_mixed_never_picks_twice_and_says_who_picked():
    rng = np.random.default_rng(1)
    data = SuggestInput(
        proba=rng.dirichlet([1, 1, 1], 50),
        embeddings=unit(rng.normal(size=(50, 4))),
        minority_embeddings=unit(rng.normal(size=(3, 4))),
    )
    cfg = section("suggest", strategy="mixed", batch_size=10, shares={"minority": 0.5, "diverse": 0.3})
    cfg = cfg.model_copy(update={"confident": 0.99, "diverse_pool_factor": 3})
    picks, by = suggest(data, cfg, seed=0)
    assert len(picks) == 10 == len(set(picks.tolist()))
    assert by == ["minority"] * 5 + ["diverse"] * 3 + ["margin"] * 2
    random = cfg.model_copy(update={"strategy": "random"})
    assert suggest(data, random, seed=0)[0].tolist() == suggest(data, random, seed=0)[0].tolist()
    assert suggest(data, random, seed=0)[0].tolist() != suggest(data, random, seed=1)[0].tolist()
    everything = cfg.model_copy(update={"strategy": "margin", "batch_size": 500})
    assert len(suggest(data, everything, seed=0)[0]) == 50  # at most the candidates there are


def test_label_studio_files_validate():
    xml = label_config([("pro_ukraine", "soutient l'Ukraine"), ("pro_russia", "soutient la Russie")])
    root = ET.fromstring(xml)
    choices = root.find("Choices")
    assert root.find("Text").get("value") == "$text" and choices.get("toName") == "text"
    assert [c.get("value") for c in choices] == ["pro_ukraine", "pro_russia"]
    assert choices[1].get("hint") == "soutient la Russie"
    out = tasks(["p1"], ["un texte"], ["pro_russia"], [0.61234], ["margin"], "abc123")
    assert json.loads(json.dumps(out)) == out
    prediction = out[0]["predictions"][0]
    assert prediction["model_version"] == "abc123" and prediction["score"] == 0.6123
    assert prediction["result"][0] == {
        "from_name": "label",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": ["pro_russia"]},
    }


def export(tasks_answers):
    """A Label Studio JSON export as its API returns it."""
    out = []
    for text, answer in tasks_answers:
        annotations = []
        if answer == "cancelled":
            annotations = [{"was_cancelled": True, "result": []}]
        elif answer is not None:
            annotations = [{"was_cancelled": False, "result": [{"type": "choices", "value": {"choices": [answer]}}]}]
        out.append({"id": len(out) + 1, "data": {"text": text}, "annotations": annotations})
    return out


def test_import_counts_every_case_and_twice_is_a_noop(tmp_path):
    labeled = tmp_path / "labeled.csv"
    pl.DataFrame({"text": ["déjà vu", "en conflit"], "label": ["pro_ukraine", "off_topic"]}).write_csv(labeled)
    pool = ["nouveau", "déjà vu", "en conflit", "annulé", "sauté", "autre nouveau", "bizarre"]
    answers_file = tmp_path / "export.json"
    answers_file.write_text(
        json.dumps(
            export(
                [
                    ("nouveau", "pro_russia"),
                    ("déjà vu", "pro_ukraine"),
                    ("en conflit", "pro_russia"),
                    ("annulé", "cancelled"),
                    ("sauté", None),
                    ("pas du pool", "off_topic"),
                    ("bizarre", "pro_mars"),
                    (" autre nouveau ", "off_topic"),
                ]
            )
        )
    )
    answers, skipped = read_answers(answers_file)
    report = merge_answers(answers, skipped, labeled, pool, LABELS, "text", "label")
    assert report.added == 2 and report.already_same == 1 and report.skipped == 2
    assert report.corrections == [{"text": "en conflit", "labelled": "off_topic", "answer": "pro_russia"}]
    assert report.corrected == 0  # not accepted: listed, not applied
    assert report.not_from_pool == ["pas du pool"]
    assert report.unknown_label == [{"text": "bizarre", "label": "pro_mars"}]
    merged = pl.read_csv(labeled)
    assert merged["label"].to_list() == ["pro_ukraine", "off_topic", "pro_russia", "off_topic"]
    assert merged.filter(pl.col("text") == "en conflit")["label"].to_list() == ["off_topic"]  # not overwritten
    again = merge_answers(*read_answers(answers_file), labeled, pool, LABELS, "text", "label")
    assert again.added == 0 and again.already_same == 3 and pl.read_csv(labeled).equals(merged)


def test_an_accepted_correction_changes_the_label_and_keeps_the_old_one(tmp_path):
    labeled = tmp_path / "labeled.csv"
    pl.DataFrame({"text": ["mal étiqueté", "juste"], "label": ["pro_ukraine", "off_topic"]}).write_csv(labeled)
    answers = [("mal étiqueté", "pro_russia"), ("juste", "off_topic")]
    report = merge_answers(answers, 0, labeled, [], LABELS, "text", "label", accept_corrections=True)
    assert report.corrected == 1 and report.already_same == 1 and report.added == 0
    merged = pl.read_csv(labeled)
    assert merged["label"].to_list() == ["pro_russia", "off_topic"]
    assert merged["label_history"].to_list() == ["pro_ukraine", None]
    again = merge_answers(answers, 0, labeled, [], LABELS, "text", "label", accept_corrections=True)
    assert again.corrected == 0 and again.already_same == 2 and pl.read_csv(labeled).equals(merged)
    # a second correction of the same row appends to its history
    merge_answers([("mal étiqueté", "off_topic")], 0, labeled, [], LABELS, "text", "label", accept_corrections=True)
    assert pl.read_csv(labeled)["label_history"].to_list() == ["pro_ukraine|pro_russia", None]


def test_import_reads_the_filled_csv_and_rejects_broken_exports(tmp_path):
    pl.DataFrame({"pool_id": ["a", "b"], "text": ["x", "y"], "label": ["pro_russia", ""]}).write_csv(tmp_path / "t.csv")
    assert read_answers(tmp_path / "t.csv") == ([("x", "pro_russia")], 1)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not a Label Studio JSON export"):
        read_answers(tmp_path / "bad.json")


@pytest.mark.slow
def test_simulation_trains_setfit_on_the_final_labels_and_writes_the_picks(smoke_repo, tmp_path):
    """scripts/annotation_sim.py on the demo's labels cut in three: seed, pool (the oracle), eval."""
    from conftest import run_cmd

    rows = pl.read_csv(smoke_repo / "data/demo/labeled.csv")
    seed, pool, held = rows[:80], rows[80:160], rows[160:]
    for name, frame in (("seed", seed), ("pool", pool), ("eval", held)):
        frame.write_csv(tmp_path / f"{name}.csv")
    cmd = ["python", "scripts/annotation_sim.py", "--seed-file", tmp_path / "seed.csv", "--pool", tmp_path / "pool.csv"]
    cmd += ["--oracle", tmp_path / "pool.csv", "--eval", tmp_path / "eval.csv", "--out", tmp_path / "out"]
    cmd += ["--rounds", "2", "--batch", "5", "--seeds", "0", "--setfit", "best", "--picks-out", tmp_path / "picks"]
    run_cmd([str(c) for c in cmd], smoke_repo)

    report = json.loads((tmp_path / "out/annotation.json").read_text())
    best = report["gain_vs_random"]["best"]
    assert set(report["gain_vs_random"]["setfit"]) == {best}
    for strategy in ("random", best):
        runs = [r for r in report["runs"] if r["strategy"] == strategy]
        assert 0 <= runs[0]["setfit"]["macro_f1"] <= 1
        assert "setfit_at_last_round" in report["strategies"][strategy]
    # the others were not trained with SetFit
    assert all("setfit" not in r for r in report["runs"] if r["strategy"] not in ("random", best))

    oracle = dict(pool.iter_rows())
    for strategy in ("random", "margin", "minority", "diverse", "mixed"):
        picks = pl.read_csv(tmp_path / f"picks/{strategy}_seed0.csv")
        assert len(picks) == 10 and picks["text"].n_unique() == 10
        assert all(oracle[t] == label for t, label in picks.iter_rows())  # pool texts, with the oracle's labels

    bad = run_cmd([str(c) for c in [*cmd[:-4], "--setfit", "some"]], smoke_repo, check=False)
    assert bad.returncode != 0 and "none, best or all" in bad.stderr
