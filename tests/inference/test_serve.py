"""`commentclf serve` over real HTTP on 127.0.0.1, and `commentclf predict`, on the smoke pipeline's int8 student."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from conftest import REPO, run_cmd

pytestmark = pytest.mark.slow  # needs the smoke pipeline's int8 student


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(smoke_repo):
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "commentclf"), "serve", "--port", str(port)],
        cwd=smoke_repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()}")
    else:
        proc.kill()
        raise AssertionError("server did not answer /health within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_health(server):
    body = httpx.get(f"{server}/health").json()
    assert body["status"] == "ok" and body["labels"] == ["pro_ukraine", "pro_russia", "off_topic"]
    assert len(body["model_version"]) == 12 and body["max_batch"] == 64
    assert body["alpha"] == 0.1 and body["abstain"] is False


def test_predict_one_and_batch(server):
    r = httpx.post(f"{server}/predict", json={"text": "Il faut aider l'Ukraine."})
    assert r.status_code == 200
    body = r.json()
    assert body["label"] in body["scores"] and abs(sum(body["scores"].values()) - 1) < 1e-3
    assert set(body["set"]) <= set(body["scores"])  # the conformal set at the server's alpha, beside the label
    r = httpx.post(f"{server}/predict/batch", json={"texts": ["un", "deux", "trois"]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    long = httpx.post(f"{server}/predict", json={"text": "très long commentaire " * 5000})
    assert long.status_code == 200  # truncated at the model's token limit, not rejected


def test_oversized_body_gets_413_before_it_is_read(server):
    huge = {"text": "x" * 2_000_000}
    r = httpx.post(f"{server}/predict", json=huge)
    assert r.status_code == 413 and "request body over 1000000 bytes" in r.text

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(40):
            yield b"x" * 50_000

    r = httpx.post(f"{server}/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert httpx.get(f"{server}/health").json()["max_body_bytes"] == 1_000_000


@pytest.mark.parametrize(
    "path,payload,message",
    [
        ("/predict", {"text": ""}, "text must not be empty"),
        ("/predict", {"text": "   "}, "text must not be empty"),
        ("/predict", {"text": 42}, "valid string"),
        ("/predict", {}, "Field required"),
        ("/predict/batch", {"texts": []}, "at least 1"),
        ("/predict/batch", {"texts": ["x"] * 65}, "at most 64"),
        ("/predict/batch", {"texts": ["ok", ""]}, "text must not be empty"),
        ("/predict/batch", {"texts": "not a list"}, "valid list"),
    ],
)
def test_bad_requests_get_422_with_a_message(server, path, payload, message):
    r = httpx.post(f"{server}{path}", json=payload)
    assert r.status_code == 422 and message in r.text, r.text


def test_load_check_has_no_errors(server):
    sys.path.insert(0, str(REPO / "scripts"))
    from load_check import main as load_check

    result = load_check(url=server, requests=200, concurrency=8, timeout_s=120)
    assert result["errors"] == 0 and result["requests"] == 200 and result["p95_ms"] > 0


def test_cli_predict_text_and_file(smoke_repo, tmp_path):
    one = run_cmd(["commentclf", "predict", "Poutine doit partir."], smoke_repo)
    assert any(label in one.stdout for label in ("pro_ukraine", "pro_russia", "off_topic"))
    pl.DataFrame({"text": ["un avis", "", "un autre avis"], "id": [1, 2, 3]}).write_csv(tmp_path / "in.csv")
    run_cmd(
        ["commentclf", "predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")],
        smoke_repo,
    )
    out = pl.read_csv(tmp_path / "out.csv")
    assert out["id"].to_list() == [1, 2, 3] and out["label"].is_null().to_list() == [False, True, False]
    assert {"score_pro_ukraine", "score_pro_russia", "score_off_topic", "set"} <= set(out.columns)
    # --abstain: a label only where the set at --alpha is one class; the scores and the set stay
    sure = ["commentclf", "predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "abstain.csv")]
    done = run_cmd([*sure, "--abstain", "--alpha", "0.02"], smoke_repo)
    abstained = pl.read_csv(tmp_path / "abstain.csv")
    for row in abstained.filter(pl.col("set").is_not_null()).iter_rows(named=True):
        assert row["label"] == (row["set"] if "|" not in row["set"] and row["set"] else None), row
    assert "abstained" in done.stdout
    parts = tmp_path / "parts"  # a folder: parquet parts and a manifest, kept for resuming
    run_cmd(
        ["commentclf", "predict", "--input", str(tmp_path / "in.csv"), "--output", str(parts), "--part-rows", "2"],
        smoke_repo,
    )
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-000000.parquet", "part-000001.parquet"]
    streamed = pl.read_parquet(sorted(parts.glob("*.parquet")))
    assert streamed["id"].to_list() == ["1", "2", "3"] and streamed["label"].to_list() == out["label"].to_list()
    bad = run_cmd(
        ["commentclf", "predict", "--input", str(tmp_path / "nope.csv"), "--output", "x.csv"], smoke_repo, check=False
    )
    assert bad.returncode == 1 and "file not found" in bad.stderr


@pytest.mark.parametrize("folder", ["int8", "int8_blockwise", "int8_dynamic", "fp32"])
def test_predict_loads_every_onnx_scheme(smoke_repo, folder):
    """Every exported model folder is self-contained (tokenizer, config, graph): `predict --model` loads it.
    (`serve` on each is started by the benchmark stage, which records its start-up time and memory.)"""
    out = run_cmd(["commentclf", "predict", "--model", f"models/onnx/{folder}", "Poutine doit partir."], smoke_repo)
    assert any(label in out.stdout for label in ("pro_ukraine", "pro_russia", "off_topic")), out.stdout
