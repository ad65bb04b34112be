import os
import subprocess
import sys

from conftest import REPO


def test_offline_environment_is_set():
    code = "import commentclf, os; print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


def test_make_exports_env_py_variables_without_repeating_them():
    makefile = (REPO / "Makefile").read_text()
    assert "src/commentclf/env.py" in makefile and "HF_HUB_OFFLINE" not in makefile
    out = subprocess.run(
        ["make", "-s", "-p", "-n", "-f", str(REPO / "Makefile"), "lint"], cwd=REPO, capture_output=True, text=True
    ).stdout
    from commentclf.env import OFFLINE_ENV

    for key, value in OFFLINE_ENV.items():
        assert f"{key} = {value}" in out.splitlines(), key


def test_the_two_false_library_warnings_are_dropped_and_nothing_else(caplog):
    import logging

    import commentclf  # noqa: F401  (installs the filters)

    caplog.set_level(logging.WARNING)
    tokenization = logging.getLogger("transformers.tokenization_utils_base")
    tokenization.warning("The tokenizer you are loading from 'models/base/e5' with an incorrect regex pattern")
    tokenization.warning("Token indices sequence length is longer than the specified maximum")
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward from x: %s", "y")
    assert [r.getMessage()[:20] for r in caplog.records] == ["Token indices sequen"]
