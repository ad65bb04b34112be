from pathlib import Path

import pytest
import yaml

from commentclf.config import ParamsError
from commentclf.profiles import apply_profile, merge, set_param_args
from conftest import REPO

PROFILES = sorted((REPO / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_profile_validates_against_the_schema(profile, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = apply_profile(str(profile))
    assert cfg.label is not None and cfg.minority_label in cfg.label_names


def test_expected_profiles_exist():
    assert {p.stem for p in PROFILES} >= {"ruw", "gpu", "smoke"}


def test_gpu_profile_has_the_original_settings(monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = apply_profile("gpu")
    assert cfg.llm.backend == "unsloth" and cfg.llm.quantize == "4bit" and cfg.llm.lora_r == 16
    assert cfg.student.body == "intfloat/multilingual-e5-base"
    assert cfg.setfit.body.endswith("paraphrase-multilingual-mpnet-base-v2")
    assert cfg.synth.generator == "teknium/OpenHermes-2.5-Mistral-7B" and {"setfit", "llm"} <= set(cfg.label.teachers)


def test_bad_profile_key_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm:\n  epoch: 3\n")
    with pytest.raises(ParamsError, match=r"llm\.epoch: unknown key"):
        apply_profile(str(bad))


def test_merge_and_set_param_args():
    merged = merge({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": 3}, "l": [9]})
    assert merged == {"a": {"b": 3, "c": 2}, "l": [9]}
    args = set_param_args({"a": {"b": 3}, "l": [1, 2], "s": "x y: z", "n": None})
    assert args == ["-S", "a.b=3", "-S", "l=[1, 2]", "-S", 's="x y: z"', "-S", "n=null"]
    for value in ("x y: z", [1, 2], None):  # every override parses back to itself as YAML
        assert yaml.safe_load(set_param_args({"k": value})[1].split("=", 1)[1]) == value


def test_ruw_profile_points_at_the_shared_data():
    raw = yaml.safe_load(Path(REPO / "profiles/ruw.yaml").read_text())
    assert raw["data"]["labeled"] == "../shared/datasets/ruw/seed.csv" and raw["language"] == "en"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_overrides_parse_back_with_dvcs_override_grammar(profile):
    """`dvc exp run -S` parses values with Hydra's override grammar: each must come back as in the profile."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from commentclf.profiles import load_profile

    raw = load_profile(profile)
    parsed = OverridesParser.create().parse_overrides(set_param_args(raw)[1::2])
    for override in parsed:
        expected = raw
        for part in override.key_or_group.split("."):
            expected = expected[part]
        assert override.value() == expected, override.key_or_group


def test_xlmt_de_profile_is_german_and_its_labels_reach_the_prompts(monkeypatch):
    from commentclf.llm.prompts import classification_prompt

    monkeypatch.chdir(REPO)
    cfg = apply_profile("xlmt-de")
    assert cfg.language == "de" and cfg.label_names == ["negative", "neutral", "positive"]
    assert cfg.data.test.endswith("xlmt-de/eval.csv") and cfg.label.gold.endswith("xlmt-de/labeled.csv")
    prompt = classification_prompt(cfg.labels, cfg.language, cfg.context, cfg.llm_answers).prefix
    assert "Ordne den Kommentar" in prompt and "- negativ :" in prompt and "- positiv :" in prompt
