"""The llm_server teacher against a real llama.cpp server from PyPI (`llama-cpp-python[server]`, built once in
its own virtualenv by scripts/llama_server.py, outside the clone) serving the assets' SmolLM2 GGUF on
127.0.0.1: the llm_label stage labels the smoke pool through it with logprobs, a rerun makes no request
(counted in the server's own access log), a server killed mid-run and restarted is asked only what was not
answered, and a wrong model name is one clear line."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cmd

pytestmark = pytest.mark.slow  # builds llama.cpp (minutes, once) and needs the smoke pipeline's models

sys.path.insert(0, str(REPO / "scripts"))
from llama_server import default_gguf, free_port, requests_served, start  # noqa: E402

ALIAS = "smollm2-135m-instruct"


class Served:
    def __init__(self, tmp: Path, name: str, api_key: str | None = None):
        self.port, self.log = free_port(), tmp / f"{name}.log"
        self.proc = start(default_gguf(), self.port, ALIAS, self.log, api_key=api_key)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> int:
        return requests_served(self.log)

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def llm_label(smoke: Path, work: Path, url: str, cache: Path, model: str = ALIAS, wait: bool = True, key_env=None):
    """The llm_label stage of the smoke repository with the server as a teacher; its outputs under `work`."""
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    params["label"]["teachers"] = ["logreg", "llm_server"]
    # SmolLM2 (English) answers the French demo prompt with no label word for most comments: counted fallbacks,
    # not a reason to stop here (max_failures is tested on a scripted server)
    # (few samples and no retries keep each hopeless comment to 3 requests: the test's time is the server's)
    server = {"base_url": url, "model": model, "samples": 2, "retries": 0, "max_failures": 1.0}
    params["label"]["server"] |= server | {"api_key_env": key_env}
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    cmd = [sys.executable, "stages/llm_label.py", "--params", str(work / "params.yaml"), "--assets", "models/base"]
    cmd += ["--split-dir", "data/split", "--setfit-dir", "models/setfit", "--llm-dir", "models/llm"]
    cmd += ["--teachers-out", str(work / "teachers.joblib"), "--ensemble-out", str(work / "ensemble.json")]
    cmd += ["--out", str(work / "pseudo.parquet"), "--recipe-out", str(work / "recipe.json")]
    cmd += ["--seed-oof", str(work / "seed_oof.parquet"), "--server-cache", str(cache)]
    cmd += ["--metrics", str(work / "label.json")]
    if not wait:
        return subprocess.Popen(cmd, cwd=smoke, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return run_cmd(cmd, smoke, check=False, timeout=900)


def cached_rows(cache: Path) -> int:
    try:
        with sqlite3.connect(cache) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_the_stage_labels_through_llama_cpp_and_a_rerun_asks_nothing(smoke_repo, tmp_path, monkeypatch):
    secret = "sk-commentclf-test-7c2e91"  # the server refuses requests without it
    monkeypatch.setenv("COMMENTCLF_TEST_LLM_KEY", secret)
    (tmp_path / "server").mkdir()  # its log: not a file the stage writes
    server = Served(tmp_path / "server", "server", api_key=secret)
    try:
        cache = tmp_path / "cache.sqlite"
        first = llm_label(smoke_repo, tmp_path / "first", server.url, cache, key_env="COMMENTCLF_TEST_LLM_KEY")
        assert first.returncode == 0, first.stderr[-3000:]
        report = json.loads((tmp_path / "first/label.json").read_text())
        stats = report["llm_server"]
        assert stats["asked"] > 0 and stats["asked"] + stats["cache_hits"] == stats["rows"]
        assert stats["probability_source"].get("logprobs", 0) > 0  # llama.cpp gives top_logprobs
        assert server.requests() == stats["requests"]  # the server counted what the teacher says it asked
        assert "llm_server" in report["weights"] and "llm_server" in report["out_of_fold"]

        second = llm_label(smoke_repo, tmp_path / "second", server.url, cache, key_env="COMMENTCLF_TEST_LLM_KEY")
        assert second.returncode == 0, second.stderr[-3000:]
        again = json.loads((tmp_path / "second/label.json").read_text())["llm_server"]
        assert again["requests"] == 0 and again["cache_hits"] == again["rows"] == stats["rows"]
        assert server.requests() == stats["requests"] + again["requests"]
        # the key went to the server (it refuses requests without it) and into no file the stage wrote
        assert secret not in first.stdout + first.stderr + second.stdout + second.stderr
        written = [f for f in tmp_path.rglob("*") if f.is_file() and "server" not in f.parts]
        assert len(written) > 10 and not any(secret.encode() in f.read_bytes() for f in written)
    finally:
        server.kill()


def test_a_server_killed_mid_run_and_restarted_is_asked_only_the_rest(smoke_repo, tmp_path):
    cache = tmp_path / "cache.sqlite"
    server = Served(tmp_path, "before")
    stage = llm_label(smoke_repo, tmp_path / "killed", server.url, cache, wait=False)
    deadline = time.time() + 600
    while cached_rows(cache) < 5 and stage.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    server.kill()
    out, err = stage.communicate(timeout=600)
    assert stage.returncode == 0, out[-2000:] + err[-2000:]  # the rest fail over: counted fallbacks
    killed = json.loads((tmp_path / "killed/label.json").read_text())["llm_server"]
    assert killed["failures"].get("connection", 0) > 0 and "Traceback" not in err
    answered = cached_rows(cache)  # a dropped connection is not an answer: those comments are not cached
    assert 5 <= answered == killed["asked"] - killed["failures"]["connection"]

    restarted = Served(tmp_path, "after")
    try:
        resumed = llm_label(smoke_repo, tmp_path / "resumed", restarted.url, cache)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        stats = json.loads((tmp_path / "resumed/label.json").read_text())["llm_server"]
        assert stats["cache_hits"] == answered and stats["asked"] == stats["rows"] - answered
        assert restarted.requests() == stats["requests"]
    finally:
        restarted.kill()


def test_a_wrong_model_name_is_one_clear_line(smoke_repo, tmp_path):
    server = Served(tmp_path, "server")
    try:
        proc = llm_label(smoke_repo, tmp_path / "wrong", server.url, tmp_path / "cache.sqlite", model="no-such-model")
        assert proc.returncode == 1
        assert (
            f"label.server.model: 'no-such-model' is not served at {server.url} (it serves ['{ALIAS}'])" in proc.stderr
        )
        assert "Traceback" not in proc.stderr and server.requests() == 0
    finally:
        server.kill()
