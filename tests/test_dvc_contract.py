"""dvc.yaml tells the truth: each stage depends on exactly the code it runs, and the paths a stage reads
and writes are given in dvc.yaml, not written into its script."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    rel = Path("src", *name.split("."))
    for candidate in (rel.with_suffix(".py"), rel / "__init__.py"):
        if (REPO / candidate).is_file():
            return candidate
    return None


def code_closure(script: Path) -> set[str]:
    """The script and every commentclf module it imports, at any depth, including imports inside functions
    (a static over-approximation: a module imported on some code path counts), and each package's
    __init__ on the way."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "commentclf":
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.split(".")[0] == "commentclf"]
            else:
                continue
            for name in names:
                parts = name.split(".")
                todo += [m for i in range(1, len(parts) + 1) if (m := module_file(".".join(parts[:i])))]
    return {str(p) for p in seen}


@pytest.mark.parametrize("stage", sorted(DVC))
def test_stage_depends_on_exactly_the_code_it_runs(stage):
    spec = DVC[stage]
    script = Path(re.match(r"python (stages/\S+\.py)", spec["cmd"]).group(1))
    declared = {d for d in spec["deps"] if d.endswith(".py")}
    expected = code_closure(script)
    assert declared == expected, (
        f"{stage}: missing {sorted(expected - declared)}, not run {sorted(declared - expected)}"
    )


def test_a_library_change_reruns_only_the_stages_that_import_it():
    users = {stage for stage, spec in DVC.items() if "src/commentclf/onnx_export.py" in spec["deps"]}
    assert users == {"onnx_export"}  # the benchmark loads the exported model, not the exporter
    users = {stage for stage, spec in DVC.items() if "src/commentclf/llm/train.py" in spec["deps"]}
    assert users == {"llm_finetune"}
    assert all("src/commentclf/config.py" in spec["deps"] for spec in DVC.values())


@pytest.mark.parametrize("stage", sorted(DVC))
def test_every_path_a_stage_touches_is_declared_in_its_command(stage):
    spec = DVC[stage]
    script = re.match(r"python (stages/\S+\.py)", spec["cmd"]).group(1)
    source = (REPO / script).read_text()
    literals = re.findall(r"[\"']((?:data|models|metrics|plots|dvclive)/[^\"']*)[\"']", source)
    assert literals == [], f"{script} names paths itself: {literals}"
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", []) + spec.get("metrics", [])]
    args = dict(re.findall(r"--([\w-]+) (\S+)", spec["cmd"]))
    for out in outs:
        assert out in args.values(), f"{stage}: output {out} is not passed in its cmd"
    for path in args.values():
        assert path == "params.yaml" or path in spec["deps"] or path in outs, f"{stage}: {path} is not declared"
