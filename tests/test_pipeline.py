"""The DVC pipeline end to end on a throwaway copy of the repository."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, copy_repo

BIN = Path(sys.executable).parent


def run(cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"))


def test_repro_then_noop(repo):
    run(["dvc", "repro"], repo)
    for name in ("train", "dev", "test", "pool"):
        assert (repo / "data/split" / f"{name}.parquet").is_file()
    manifest = json.loads((repo / "models/base/assets.json").read_text())
    assert Path(repo / manifest["encoder"], "modules.json").is_file()
    assert Path(repo / manifest["llm"], "config.json").is_file()
    assets = json.loads((repo / "metrics/assets.json").read_text())
    assert assets["encoder"]["cosine_min"] >= 0.999 and assets["llm"]["stopped_at_eos"]
    data = json.loads((repo / "metrics/data.json").read_text())
    assert data["labeled"]["kept"] == sum(s["rows"] for s in data["split"].values())

    again = run(["dvc", "repro"], repo)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout
    status = run(["dvc", "status"], repo)
    assert "up to date" in status.stdout


def test_changed_param_reruns_only_split(repo):
    run(["dvc", "repro"], repo)
    before = pd.read_parquet(repo / "data/split/test.parquet")
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("  seed: 42\n  min_per_label", "  seed: 7\n  min_per_label"))
    out = run(["dvc", "repro"], repo)
    assert "Running stage 'split'" in out.stdout and "Running stage 'assets'" not in out.stdout
    after = pd.read_parquet(repo / "data/split/test.parquet")
    assert set(before["id"]) != set(after["id"]) and len(before) == len(after)


def test_stage_reports_bad_data_without_traceback(repo, tmp_path):
    params = (repo / "params.yaml").read_text().replace("data/demo/unlabeled.csv", str(tmp_path / "missing.csv"))
    (tmp_path / "params.yaml").write_text(params)
    proc = run([sys.executable, "stages/split.py", "--params", str(tmp_path / "params.yaml")], repo, check=False)
    assert proc.returncode == 1
    assert f"error: {tmp_path / 'missing.csv'}: file not found" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def test_cli_check_validates_params_and_data(repo, tmp_path):
    ok = run(["commentclf", "check"], repo)
    assert "params and data are valid" in ok.stdout
    (tmp_path / "params.yaml").write_text((repo / "params.yaml").read_text() + "\nsplitt: {}\n")
    bad = run(["commentclf", "check", "--params", str(tmp_path / "params.yaml")], repo, check=False)
    assert bad.returncode == 1 and "splitt: unknown key" in bad.stderr


def test_offline_environment_is_set():
    code = "import commentclf, os; print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]
    assert (REPO / "Makefile").read_text().count("HF_HUB_OFFLINE") >= 1
