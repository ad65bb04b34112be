"""llm_label's row scoring: the parts both engines score, and the rows the model teachers skip."""

import numpy as np

from commentclf.teachers.scoring import RowScorer, score_rows


def fake_scorer(calls: list) -> RowScorer:
    """A RowScorer whose encoder and teacher are arithmetic, recording each teacher call's texts."""
    scorer = RowScorer.__new__(RowScorer)  # no models: __init__ would load e5 and SetFit
    scorer.n_labels = 3
    scorer.embed = lambda texts: np.array([[len(t), 1.0] for t in texts])

    def teacher(texts):
        calls.append(list(texts))
        return np.tile([0.2, 0.3, 0.5], (len(texts), 1))

    scorer.teachers = {"setfit": teacher}
    return scorer


def test_train_rows_get_no_teacher_scores_and_are_never_sent_to_the_teacher():
    calls = []
    scores = fake_scorer(calls)(["a", "bb", "ccc"], np.array([False, True, True]))
    assert calls == [["bb", "ccc"]]
    assert np.isnan(scores["setfit"][0]).all() and np.allclose(scores["setfit"][1:], [0.2, 0.3, 0.5])
    assert scores["embedding"][:, 0].tolist() == [1, 2, 3]


def test_parts_cover_every_row_once_in_order():
    calls = []
    texts = [f"t{i}" * (i % 4 + 1) for i in range(10)]
    needs = np.array([i % 3 != 0 for i in range(10)])
    scores = score_rows(fake_scorer(calls), texts, needs, part_rows=4)
    assert [len(c) for c in calls] == [2, 3, 1]  # parts of 4, 4, 2 rows, without the rows that need no model
    assert scores["embedding"][:, 0].tolist() == [len(t) for t in texts]
    assert (np.isnan(scores["setfit"][:, 0]) == ~needs).all()
