import json
import math

from commentclf.files import canonical_json, size_mb, write_json


def test_canonical_json_sorts_keys_and_the_named_lists_only(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"r": 16, "target_modules": ["v_proj", "k_proj", "q_proj"], "labels": ["b", "a"]}))
    canonical_json(path, sorted_lists=("target_modules",))
    text = path.read_text()
    assert list(json.loads(text)) == ["labels", "r", "target_modules"]
    assert json.loads(text)["target_modules"] == ["k_proj", "q_proj", "v_proj"]
    assert json.loads(text)["labels"] == ["b", "a"]  # an ordered list keeps its order
    # the same content written in another order gives the same bytes
    path.write_text(json.dumps({"target_modules": ["q_proj", "v_proj", "k_proj"], "labels": ["b", "a"], "r": 16}))
    canonical_json(path, sorted_lists=("target_modules",))
    assert path.read_text() == text


def test_write_json_turns_nan_and_numpy_into_plain_json(tmp_path):
    import numpy as np

    write_json(tmp_path / "m" / "x.json", {"a": float("nan"), "b": np.float32(0.5), "c": [np.int64(3), math.inf]})
    assert json.loads((tmp_path / "m" / "x.json").read_text()) == {"a": None, "b": 0.5, "c": [3, None]}


def test_size_mb_adds_files_and_folders_and_knows_a_missing_path(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"x" * 2**20)
    (tmp_path / "b.bin").write_bytes(b"x" * 2**19)
    assert size_mb(tmp_path / "d", tmp_path / "b.bin") == 1.5
    assert size_mb(tmp_path / "d", "hub-org/some-model") is None
