import json

from commentclf.seeding import canonical_json


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
