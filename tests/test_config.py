import pytest
import yaml

from commentclf.config import ParamsError, load_params, parse_params
from conftest import REPO, base_params


def test_repo_params_validate():
    cfg = load_params(REPO / "params.yaml")
    assert cfg.minority_label in cfg.label_names
    assert all(label.description for label in cfg.labels)


def test_unknown_key_is_named(params_dict):
    params_dict["split"] = {"dev_fraction": 0.2}
    with pytest.raises(ParamsError, match=r"split\.dev_fraction: unknown key"):
        parse_params(params_dict)


def test_unknown_top_level_key_is_named(params_dict):
    params_dict["sedd"] = 1
    with pytest.raises(ParamsError, match=r"sedd: unknown key"):
        parse_params(params_dict)


def test_wrong_type_is_named(params_dict):
    params_dict["split"] = {"seed": "forty-two"}
    with pytest.raises(ParamsError, match=r"split\.seed: .*integer"):
        parse_params(params_dict)


def test_out_of_range_fraction(params_dict):
    params_dict["split"] = {"dev_frac": 1.5}
    with pytest.raises(ParamsError, match=r"split\.dev_frac"):
        parse_params(params_dict)


def test_minority_label_must_be_a_label(params_dict):
    params_dict["minority_label"] = "pro_mars"
    with pytest.raises(ParamsError, match="minority_label: 'pro_mars' is not one of the labels"):
        parse_params(params_dict)


def test_duplicate_labels_rejected():
    raw = base_params()
    raw["labels"].append({"name": "off_topic", "description": "again"})
    with pytest.raises(ParamsError, match="duplicate label names"):
        parse_params(raw)


def test_llm_answers_default_to_names_and_must_differ():
    raw = base_params()
    assert parse_params(raw).llm_answers == {x["name"]: x["name"] for x in raw["labels"]}
    for label, word in zip(raw["labels"], ["Ukraine", "Russie", "négatif"]):
        label["answer"] = word  # any single word, accents too
    assert list(parse_params(raw).llm_answers.values()) == ["Ukraine", "Russie", "négatif"]
    for word, message in [
        ("Ukraine", "same answer word"),
        ("pro russia", "labels.1.answer"),
        ('a"b', "labels.1.answer"),
    ]:
        raw["labels"][1]["answer"] = word
        with pytest.raises(ParamsError, match=message):
            parse_params(raw)


def test_answers_travel_with_their_labels():
    """A new label set never inherits the old answer words: the answers sit in the label entries."""
    from commentclf.profiles import merge

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    new = [{"name": n, "description": n} for n in ("negative", "neutral", "positive")]
    cfg = parse_params(merge(raw, {"labels": new, "minority_label": "negative"}))
    assert cfg.llm_answers == {"negative": "negative", "neutral": "neutral", "positive": "positive"}


def test_params_yaml_is_the_one_source_of_values():
    """The schema has no defaults (but the optional label answer), so params.yaml holds every value, and
    a key missing from it is named at load."""
    from pydantic import BaseModel

    from commentclf.config import Label, Params

    def walk(model: type[BaseModel], path: str = ""):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            yield f"{path}{name}", model, field
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from walk(annotation, f"{path}{name}.")

    with_default = [key for key, model, field in walk(Params) if not field.is_required() and model is not Label]
    assert with_default == []
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    del raw["student"]["epochs"]
    with pytest.raises(ParamsError, match=r"student\.epochs: missing"):
        parse_params(raw)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_labels_are_data(tmp_path):
    """Any label set works: a binary task validates the same way."""
    raw = base_params()
    raw["labels"] = [{"name": "spam", "description": "unwanted"}, {"name": "ham", "description": "wanted"}]
    raw["minority_label"] = "spam"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_params(path).label_names == ["spam", "ham"]


def test_block_size_must_be_a_power_of_two(params_dict):
    params_dict["onnx"]["block_size"] = 96  # onnxruntime would only refuse the model when it loads it
    with pytest.raises(ParamsError, match=r"onnx\.block_size must be a power of two"):
        parse_params(params_dict)
