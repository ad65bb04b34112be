import os
import subprocess
import sys

from conftest import REPO


def test_offline_environment_is_set():
    code = "import commentclf, os; print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]
    assert "HF_HUB_OFFLINE" in (REPO / "Makefile").read_text()
