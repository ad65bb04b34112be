"""`commentclf predict --input`: streamed in parts, equal to the whole-file result, resumable, refusing to mix."""

import json

import numpy as np
import polars as pl
import pytest

from commentclf.errors import DataError
from commentclf.files import model_version
from commentclf.inference.streaming import MANIFEST, export_output, predict_file, predict_part, read_output

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]


class FakeStudent:
    """Deterministic probabilities from the text (so parts and whole file must agree exactly); `fail_after`
    model calls, it raises, as a killed process would stop."""

    def __init__(self, file, fail_after=None):
        self.labels, self.file, self.calls, self.fail_after = LABELS, file, 0, fail_after

    @property
    def version(self):
        return model_version(self.file)

    def predict_proba(self, texts, batch_size=32):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("killed")
        raw = np.array([[len(t) % 7 + 1, sum(map(ord, t)) % 5 + 1, 3.0] for t in texts], dtype=float)
        return raw / raw.sum(1, keepdims=True)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a real graph: only its hash is read here")
    return path


def comments(n):
    texts = [f"commentaire numéro {i} " + "x" * (i % 13) for i in range(n)]
    texts[3], texts[10] = "", "   "  # empty texts stay unlabelled
    return pl.DataFrame({"id": [f"c{i}" for i in range(n)], "text": texts, "source": ["lemonde"] * n})


def test_parts_equal_the_whole_file_in_input_order(tmp_path, model_file):
    df = comments(25)
    df.write_csv(tmp_path / "in.csv")
    manifest = predict_file(FakeStudent(model_file), tmp_path / "in.csv", tmp_path / "out", part_rows=7, batch_size=4)
    assert [(p["first_row"], p["rows"]) for p in manifest["parts"]] == [(0, 7), (7, 7), (14, 7), (21, 4)]
    assert manifest["complete"] and manifest["rows"] == 25 and manifest["unlabelled"] == 2
    streamed = read_output(tmp_path / "out").collect()
    whole = predict_part(FakeStudent(model_file), df.with_row_index("__row"), "text", "id", 64)
    assert streamed.equals(whole)
    assert streamed["id"].to_list() == df["id"].to_list()
    assert streamed["label"].is_null().to_list() == [i in (3, 10) for i in range(25)]
    assert streamed["score_pro_russia"].is_null().sum() == 2


def test_resume_after_a_crash_gives_every_row_once(tmp_path, model_file):
    comments(30).write_parquet(tmp_path / "in.parquet")
    crashing = FakeStudent(model_file, fail_after=2)  # one model call per part: dies in the third part
    with pytest.raises(RuntimeError, match="killed"):
        predict_file(crashing, tmp_path / "in.parquet", tmp_path / "out", part_rows=10, batch_size=64)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert [p["rows"] for p in manifest["parts"]] == [10, 10] and not manifest["complete"]
    assert not list((tmp_path / "out").glob("*.tmp"))
    resumed = FakeStudent(model_file)
    predict_file(resumed, tmp_path / "in.parquet", tmp_path / "out", part_rows=10, batch_size=64)
    assert resumed.calls == 1  # only the unfinished part was labelled again
    out = read_output(tmp_path / "out").collect()
    assert out["id"].to_list() == [f"c{i}" for i in range(30)]
    predict_file(FakeStudent(model_file), tmp_path / "in.parquet", tmp_path / "out", part_rows=10)  # no-op
    assert read_output(tmp_path / "out").collect().equals(out)
    clean = FakeStudent(model_file)
    predict_file(clean, tmp_path / "in.parquet", tmp_path / "clean", part_rows=10, batch_size=64)
    assert read_output(tmp_path / "clean").collect().equals(out)


def test_output_of_another_input_or_model_is_refused(tmp_path, model_file):
    comments(12).write_csv(tmp_path / "in.csv")
    predict_file(FakeStudent(model_file), tmp_path / "in.csv", tmp_path / "out", part_rows=5)
    comments(13).write_csv(tmp_path / "in.csv")
    with pytest.raises(DataError, match="another run .*input_bytes"):
        predict_file(FakeStudent(model_file), tmp_path / "in.csv", tmp_path / "out", part_rows=5)
    other = tmp_path / "other.onnx"
    other.write_bytes(b"another model")
    comments(12).write_csv(tmp_path / "in2.csv")
    predict_file(FakeStudent(model_file), tmp_path / "in2.csv", tmp_path / "out2", part_rows=5)
    with pytest.raises(DataError, match="model_version"):
        predict_file(FakeStudent(other), tmp_path / "in2.csv", tmp_path / "out2", part_rows=5)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a predict output"):
        predict_file(FakeStudent(model_file), tmp_path / "in2.csv", tmp_path / "busy")


def test_ids_missing_columns_odd_values_and_export(tmp_path, model_file):
    pl.DataFrame({"text": ["un", None, "deux", "NA"]}).write_parquet(tmp_path / "noid.parquet")
    manifest = predict_file(FakeStudent(model_file), tmp_path / "noid.parquet", tmp_path / "a", part_rows=3)
    out = read_output(tmp_path / "a").collect()
    assert out["id"].to_list() == [0, 1, 2, 3] and manifest["unlabelled"] == 1
    assert out["text"].to_list()[3] == "NA" and out["label"][3] is not None  # "NA" is a comment, not a null
    export_output(tmp_path / "a", tmp_path / "a.csv")
    assert pl.read_csv(tmp_path / "a.csv")["id"].to_list() == [0, 1, 2, 3]
    pl.DataFrame({"id": [], "text": []}, schema={"id": pl.String, "text": pl.String}).write_csv(tmp_path / "e.csv")
    empty = predict_file(FakeStudent(model_file), tmp_path / "e.csv", tmp_path / "e", part_rows=3)
    assert empty["rows"] == 0 and "label" in read_output(tmp_path / "e").collect().columns
    pl.DataFrame({"comment": ["x"]}).write_csv(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="missing column 'text'"):
        predict_file(FakeStudent(model_file), tmp_path / "bad.csv", tmp_path / "b")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match="broken.parquet: cannot read file"):
        predict_file(FakeStudent(model_file), tmp_path / "broken.parquet", tmp_path / "c")
    (tmp_path / "latin1.csv").write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.csv"):
        predict_file(FakeStudent(model_file), tmp_path / "latin1.csv", tmp_path / "d")


class SetStudent(FakeStudent):
    """FakeStudent with conformal sets calibrated on a few of its own rows."""

    def prediction_sets(self, proba, alpha):
        from commentclf.conformal import ConformalSets

        cal = self.predict_proba([f"calibration {i}" * (i % 4 + 1) for i in range(30)])
        return ConformalSets.fit(cal, np.arange(30) % 3).sets(proba, alpha)


def test_sets_and_abstention_ride_along_and_name_the_output(tmp_path, model_file):
    from commentclf.inference.streaming import SetOptions

    comments(20).write_csv(tmp_path / "in.csv")
    clf = SetStudent(model_file)
    predict_file(clf, tmp_path / "in.csv", tmp_path / "sets", part_rows=7, sets=SetOptions(0.2))
    with_sets = read_output(tmp_path / "sets").collect()
    assert with_sets["set"].null_count() == 2  # the two empty texts: no scores, no set
    manifest = predict_file(clf, tmp_path / "in.csv", tmp_path / "abstain", part_rows=7, sets=SetOptions(0.2, True))
    abstained = read_output(tmp_path / "abstain").collect()
    single = abstained["set"].map_elements(lambda s: bool(s) and "|" not in s, return_dtype=bool).fill_null(False)
    assert abstained.filter(single)["label"].to_list() == abstained.filter(single)["set"].to_list()
    assert manifest["abstained"] == abstained.filter(~single & pl.col("set").is_not_null()).height
    assert manifest["unlabelled"] == manifest["abstained"] + 2
    # the settings name the output: another alpha is another output, never mixed in
    with pytest.raises(DataError, match="different sets"):
        predict_file(clf, tmp_path / "in.csv", tmp_path / "abstain", part_rows=7, sets=SetOptions(0.1, True))
