"""The `commentclf` command's own behaviour (its pipeline uses run in tests/test_pipeline.py)."""

import subprocess

import yaml
from typer.testing import CliRunner

from commentclf.cli import app
from conftest import REPO


def test_exp_prints_the_dvc_command_verbatim(tmp_path, monkeypatch):
    """A list in a profile must reach the screen as it is passed (rich markup once ate `[...]`)."""
    profile = tmp_path / "words.yaml"
    profile.write_text(
        yaml.safe_dump({"label": {"teachers": ["logreg", "tfidf"]}, "context": "Avis [sic] des lecteurs."})
    )
    calls = []
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    result = CliRunner().invoke(app, ["exp", "--profile", str(profile)])
    assert result.exit_code == 0, result.output
    assert "-S 'label.teachers=[logreg, tfidf]'" in result.output
    assert 'context="Avis [sic] des lecteurs."' in result.output
    assert calls and "label.teachers=[logreg, tfidf]" in calls[0]


def test_exp_names_a_bad_profile_key_and_runs_nothing(tmp_path, monkeypatch):
    profile = tmp_path / "bad.yaml"
    profile.write_text(yaml.safe_dump({"student": {"epochz": 2}}))
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(subprocess, "call", lambda cmd: (_ for _ in ()).throw(AssertionError("ran")))
    result = CliRunner().invoke(app, ["exp", "--profile", str(profile)])
    assert result.exit_code == 1 and "student.epochz: unknown key" in result.output
