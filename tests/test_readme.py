"""The README cannot rot: every command in its shell blocks is parsed and checked against the real thing
(a Makefile target, a CLI's --help, a params key, a script, an extra), and its Results tables match the
committed reports."""

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from commentclf.cli import app
from commentclf.evaluation.reports import render_readme
from conftest import REPO

README = (REPO / "README.md").read_text()


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def flags(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if w.startswith("-") and not re.fullmatch(r"-\w", w)]


def params_has(key: str) -> bool:
    node = yaml.safe_load((REPO / "params.yaml").read_text())
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check(command: str) -> None:
    words = shlex.split(command)
    tool = words[0]
    if tool == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M)
        assert words[1] in targets, f"no make target {words[1]}"
        for assignment in words[2:]:
            name, value = assignment.split("=")
            assert name == "PROFILE" and (REPO / "profiles" / f"{value}.yaml").is_file(), assignment
    elif tool == "commentclf":
        groups = {g.name for g in app.registered_groups}  # `commentclf annotations import`: a command of a group
        sub = words[1:3] if words[1] in groups else words[1:2]
        result = CliRunner().invoke(app, [*sub, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        for flag in flags(words[1 + len(sub) :]):
            assert flag in result.output, f"{command}: {flag} is not an option of `commentclf {' '.join(sub)}`"
    elif tool == "dvc":
        sub = [w for w in words[1:3] if not w.startswith("-")]
        help_text = subprocess.run(
            [sys.executable, "-m", "dvc", *sub, "--help"], capture_output=True, text=True, check=True
        ).stdout
        for flag in flags(words[1:]):
            assert flag in help_text, f"{command}: {flag} is not an option of `dvc {' '.join(sub)}`"
        for i, word in enumerate(words):
            if word == "-S":
                key = words[i + 1].split("=")[0]
                assert params_has(key), f"{command}: {key} is not a key of params.yaml"
    elif tool == "python":
        script = REPO / words[1]
        assert script.is_file(), f"{words[1]} does not exist"
        source = script.read_text()
        for flag in flags(words[2:]):
            assert flag.lstrip("-").replace("-", "_") in source, f"{command}: {flag} is not an option of {words[1]}"
    elif tool.endswith("pip") and words[1] == "install":
        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for extra in re.findall(r"\.\[(\w+)\]", command):
            assert extra in extras, f"{command}: no extra {extra!r} in pyproject.toml"
    else:
        raise AssertionError(f"the README runs {tool!r}: teach tests/test_readme.py to check it")


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_is_real(command):
    check(command)


def test_the_two_commands_open_the_readme_and_ci_runs_one():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    assert first_block.splitlines()[0].startswith("make repro") and "make test" in first_block
    assert "make test" in (REPO / ".ci/run").read_text()


def test_readme_is_a_short_guide():
    assert len(README) <= 12_000, len(README)


def test_results_tables_match_the_reports():
    """`python scripts/report.py readme` regenerates them; a hand-edited figure fails here."""
    assert render_readme(README, REPO / "reports") == README
    reported = sorted(p.parent.name for p in (REPO / "reports").glob("*/benchmark.json"))
    assert "demo" in reported
    for dataset in re.findall(r"<!-- results:([\w-]+) -->", README):
        assert dataset in reported, f"README has a Results block for {dataset} but reports/{dataset} has no run"
    for dataset in reported:
        table = README.split(f"<!-- results:{dataset} -->")[1].split(f"<!-- /results:{dataset} -->")[0]
        bench = json.loads((REPO / "reports" / dataset / "benchmark.json").read_text())
        deployed = bench.get("deployed") or bench["comparisons"]["deployed"]  # top-level key since the vocab trim
        assert f"| {deployed} |" in table, f"README has no results table for {dataset}"


def test_report_script_checks_and_rewrites(tmp_path):
    assert Path(REPO / "scripts/report.py").is_file()
    out = subprocess.run([sys.executable, "scripts/report.py", "readme", "--check"], cwd=REPO)
    assert out.returncode == 0
