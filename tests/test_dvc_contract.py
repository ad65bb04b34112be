"""dvc.yaml tells the truth: each stage depends on exactly the code it runs, and the paths a stage reads
and writes are given in dvc.yaml, not written into its script."""

import re
import sys
from pathlib import Path

import grimp
import pytest
import yaml

from conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
sys.path.insert(0, str(REPO))  # `stages` is a package of the repository root, beside src/
GRAPH = grimp.build_graph("commentclf", "stages", cache_dir=None)


def module_file(name: str) -> str:
    root = REPO / "src" if name.startswith("commentclf") else REPO
    rel = Path(*name.split("."))
    path = rel / "__init__.py" if (root / rel).is_dir() else rel.with_suffix(".py")
    return str((root / path).relative_to(REPO))


def code_closure(script: Path) -> set[str]:
    """The script and every commentclf module it imports, at any depth, including imports inside functions
    (grimp's import graph: a static over-approximation, a module imported on some code path counts), and
    each package's __init__ on the way (Python runs it before the module)."""
    todo, modules = {".".join(script.with_suffix("").parts)}, set()
    while todo:  # what the modules import, then what their packages' __init__s import, until nothing is new
        found = set().union(*(GRAPH.find_upstream_modules(m) for m in todo))
        found = {m for m in found if m.startswith("commentclf")}
        found |= {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
        todo, modules = found - modules, modules | found
    return {str(script)} | {module_file(m) for m in modules}


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
    users = {stage for stage, spec in DVC.items() if "src/commentclf/student/onnx_export.py" in spec["deps"]}
    assert users == {"onnx_export"}  # the benchmark loads the exported model, not the exporter
    users = {stage for stage, spec in DVC.items() if "src/commentclf/llm/train.py" in spec["deps"]}
    assert users == {"llm_finetune"}
    assert all("src/commentclf/config.py" in spec["deps"] for spec in DVC.values())
    # the user's commands are no stage's code: editing predict (local or Ray) or the CLI reruns nothing
    for module in ("cli.py", "inference/streaming.py", "inference/ray_predict.py"):
        assert not [stage for stage, spec in DVC.items() if f"src/commentclf/{module}" in spec["deps"]], module


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


@pytest.mark.parametrize("stage", sorted(DVC))
def test_a_stage_main_reads_calls_and_writes_in_at_most_60_lines(stage):
    import ast

    script = re.match(r"python (stages/\S+\.py)", DVC[stage]["cmd"]).group(1)
    tree = ast.parse((REPO / script).read_text())
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    length = main.end_lineno - main.lineno + 1
    assert length <= 60, f"{script}: main is {length} lines; move the logic into the library"
