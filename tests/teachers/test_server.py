"""The llm_server teacher against a scripted OpenAI-compatible server on 127.0.0.1 (the real llama.cpp server
is exercised in test_llama_server.py): probabilities from logprobs or samples, the cache, retries and their
counted fallbacks, the few-shot rows, the key."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from commentclf.config import load_params
from commentclf.data import text_id
from commentclf.errors import ServerError
from commentclf.llm.prompts import classification_prompt
from commentclf.teachers import labelling
from commentclf.teachers.server import (
    ServerTeacher,
    draw_shots,
    is_loopback,
    label_mass,
    server_teacher,
)

REPO = Path(__file__).resolve().parents[2]
LABELS = ["pro_ukraine", "pro_russia", "off_topic"]
ANSWERS = ["Ukraine", "Russia", "neutral"]


def top(**probs) -> dict:
    return {token: math.log(p) for token, p in probs.items()}


def completion(top_logprobs: dict | None = None, text: str = "Russia", usage=(100, 1)) -> dict:
    choice = {"text": text, "finish_reason": "length"}
    if top_logprobs is not None:
        choice["logprobs"] = {"tokens": [text], "top_logprobs": [top_logprobs]}
    return {"choices": [choice], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}}


class FakeServer:
    """A threaded HTTP server speaking enough of the OpenAI API: /models lists `models`, and each POST is
    answered by `respond(body) -> (status, json, delay_s)`; every POST body and header set is kept."""

    def __init__(self, respond, models=("tiny",)):
        self.respond, self.models, self.posts, self.headers = respond, list(models), [], []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.headers.append(dict(self.headers))
                self._send(200, {"object": "list", "data": [{"id": m} for m in fake.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.posts.append(body)
                fake.headers.append(dict(self.headers))
                status, payload, delay = fake.respond(body)
                time.sleep(delay)
                try:
                    self._send(status, payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def start(respond, **kw):
        servers.append(FakeServer(respond, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def params(url: str, **server):
    cfg = load_params(REPO / "params.yaml")
    settings = dict(base_url=url, model="tiny", retries=2, backoff_s=0.0, timeout_s=5.0, max_failures=1.0) | server
    label = cfg.label.model_copy(update={"server": cfg.label.server.model_copy(update=settings)})
    return cfg.model_copy(update={"label": label})


def teacher(cfg, tmp_path: Path, shots=None) -> ServerTeacher:
    answers = cfg.llm_answers
    prompt = classification_prompt(cfg.labels, cfg.language, cfg.context, answers).with_examples(shots or [])
    return ServerTeacher(
        cfg.label.server, prompt, cfg.label_names, [answers[n] for n in cfg.label_names], tmp_path / "cache.sqlite"
    )


def test_label_mass_reads_the_answer_words_from_the_first_token():
    p = label_mass(top(Russia=0.6, Ukr=0.2, neutral=0.1, hello=0.1), ANSWERS)
    assert np.allclose(p, [0.2 / 0.9, 0.6 / 0.9, 0.1 / 0.9])
    # a token that begins two answers is shared; leading spaces and case do not matter
    p = label_mass(top(**{" N": 0.5, "Neu": 0.5}), ["Nato", "neutral"])
    assert np.allclose(p, [0.25, 0.75])
    assert label_mass(top(Sure=0.9, **{"{": 0.1}), ANSWERS) is None


def test_logprobs_give_the_probabilities_and_the_cache_answers_a_rerun(fake, tmp_path):
    server = fake(lambda body: (200, completion(top(Russia=0.7, Ukraine=0.2, neutral=0.1)), 0))
    cfg = params(server.url)
    texts = ["first comment", "second comment", "first comment"]
    p = teacher(cfg, tmp_path)(texts)
    assert np.allclose(p, [[0.2, 0.7, 0.1]] * 3)
    assert len(server.posts) == 2  # the repeated text is asked once
    body = server.posts[0]
    assert body["model"] == "tiny" and body["logprobs"] == cfg.label.server.top_logprobs and body["max_tokens"] == 1
    assert body["prompt"].endswith('### Response:\n{"label": "')
    assert sorted(b["prompt"].rsplit("### Comment:\n", 1)[1].split("\n")[0] for b in server.posts) == [
        "first comment",
        "second comment",
    ]

    again = teacher(cfg, tmp_path)
    assert np.allclose(again(texts + ["a new one"]), [[0.2, 0.7, 0.1]] * 4)
    assert len(server.posts) == 3  # only the new comment was asked
    assert again.stats.as_dict()["cache_hits"] == 3 and again.stats.source["logprobs"] == 1

    server.close()  # every answer cached: the server is not needed, not even checked
    assert np.allclose(teacher(cfg, tmp_path)(texts), [[0.2, 0.7, 0.1]] * 3)


def test_the_cache_key_changes_with_the_prompt_and_the_model(fake, tmp_path):
    server = fake(lambda body: (200, completion(top(Russia=1.0)), 0), models=("tiny", "other"))
    cfg = params(server.url)
    teacher(cfg, tmp_path)(["a comment"])
    teacher(cfg, tmp_path)(["a comment"])
    assert len(server.posts) == 1
    teacher(cfg, tmp_path, shots=[("an example", "Russia")])(["a comment"])  # another prompt
    assert len(server.posts) == 2
    teacher(params(server.url, model="other"), tmp_path)(["a comment"])  # another model
    assert len(server.posts) == 3
    assert server.posts[-1]["model"] == "other"


@pytest.mark.parametrize(
    "kind, respond",
    [
        ("unparsable", lambda body: (200, completion(top(Sure=0.9, I=0.1), text="Sure"), 0)),
        ("http_429", lambda body: (429, {"error": "slow down"}, 0)),
        ("http_5xx", lambda body: (503, {"error": "loading"}, 0)),
        ("timeout", lambda body: (200, completion(top(Russia=1.0)), 1.0)),
    ],
)
def test_a_failing_answer_is_retried_then_a_counted_uniform_row(fake, tmp_path, kind, respond):
    server = fake(respond)
    cfg = params(server.url, timeout_s=0.3, retries=2)
    t = teacher(cfg, tmp_path)
    p = t(["a comment"])
    assert np.allclose(p, 1 / 3)
    stats = t.stats.as_dict()
    assert stats["failures"] == {kind: 1} and stats["retries"] == 2 and stats["failed_rows"] == 1
    # the first try and two retries; an unreadable answer token is followed by 5 sampled answers each time
    assert len(server.posts) == (3 * 6 if kind == "unparsable" else 3)
    # a transient failure is asked again next run; an answer unreadable at every try is the model's, and kept
    kept = teacher(cfg, tmp_path).cache.get("tiny", t.prompt_hash, [text_id("a comment")])
    assert kept == ({text_id("a comment"): ([1 / 3] * 3, "unparsable")} if kind == "unparsable" else {})


def test_a_429_then_an_answer_counts_as_answered(fake, tmp_path):
    calls = []

    def respond(body):
        calls.append(1)
        return (429, {}, 0) if len(calls) == 1 else (200, completion(top(neutral=1.0)), 0)

    server = fake(respond)
    t = teacher(params(server.url), tmp_path)
    assert np.allclose(t(["a comment"]), [[0, 0, 1]])
    assert t.stats.as_dict()["failures"] == {} and t.stats.retries == 1


def test_too_many_failures_stop_with_a_message_and_keep_the_answers(fake, tmp_path):
    def respond(body):
        ok = "good" in body["prompt"]
        return (200, completion(top(Russia=1.0)), 0) if ok else (500, {}, 0)

    server = fake(respond)
    cfg = params(server.url, max_failures=0.2, retries=0, concurrency=1)
    texts = ["good one", "good two", "bad one", "bad two", "bad three"]
    with pytest.raises(ServerError, match=r"label.server: more than 20% .*http_5xx"):
        teacher(cfg, tmp_path)(texts)
    t = teacher(cfg, tmp_path)  # the answers that came before the stop are kept: a rerun asks only the rest
    assert len(t.cache.get("tiny", t.prompt_hash, [text_id(x) for x in texts[:2]])) == 2


def test_without_logprobs_the_answers_are_sampled(fake, tmp_path):
    replies = iter(['Russia"}', 'Russia"}', 'neutral"}', "garbage", 'Russia"}'] * 2)
    server = fake(lambda body: (200, completion(None, text=next(replies)), 0))
    cfg = params(server.url, samples=5)
    t = teacher(cfg, tmp_path)
    p = t(["a comment"])
    assert np.allclose(p, [[0, 0.75, 0.25]])  # 3 Russia, 1 neutral, 1 unreadable of 5
    assert t.stats.source == {"samples": 1}
    assert [b["temperature"] for b in server.posts[1:]] == [1.0] * 5


def test_chat_reads_the_token_after_the_label_key(fake, tmp_path):
    def respond(body):
        tokens = [('{"', {}), ("label", {}), ('": "', {}), ("Ukraine", {"Ukraine": 0.6, "Russia": 0.4}), ('"}', {})]
        content = [
            {
                "token": t,
                "logprob": 0.0,
                "top_logprobs": [{"token": k, "logprob": math.log(v)} for k, v in alts.items()],
            }
            for t, alts in tokens
        ]
        return 200, {"choices": [{"message": {"content": "..."}, "logprobs": {"content": content}}]}, 0

    server = fake(respond)
    t = teacher(params(server.url, endpoint="chat"), tmp_path)
    assert np.allclose(t(["a comment"]), [[0.6, 0.4, 0.0]])
    assert server.posts[0]["messages"][0]["role"] == "user" and server.posts[0]["top_logprobs"] == 10


def test_a_wrong_model_or_no_server_is_a_clear_error(fake, tmp_path):
    server = fake(lambda body: (200, completion(top(Russia=1.0)), 0), models=("smollm2",))
    with pytest.raises(
        ServerError, match=r"label.server.model: 'tiny' is not served at .* \(it serves \['smollm2'\]\)"
    ):
        teacher(params(server.url), tmp_path)(["a comment"])
    assert server.posts == []
    with pytest.raises(ServerError, match="label.server.base_url: no server answers at http://127.0.0.1:9/v1"):
        teacher(params("http://127.0.0.1:9/v1"), tmp_path)(["a comment"])


def test_the_api_key_is_sent_and_never_written(fake, tmp_path, monkeypatch):
    secret = "sk-test-5f1c0a9e-never-in-a-file"
    monkeypatch.setenv("COMMENTCLF_TEST_KEY", secret)
    server = fake(lambda body: (200, completion(top(Russia=1.0)), 0))
    t = teacher(params(server.url, api_key_env="COMMENTCLF_TEST_KEY"), tmp_path)
    t(["a comment"])
    assert all(h.get("Authorization") == f"Bearer {secret}" for h in server.headers)
    t.cache.close()
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(secret.encode() in data for data in written)
    assert secret not in json.dumps(t.stats.as_dict()) and secret not in repr(t.cfg)
    monkeypatch.delenv("COMMENTCLF_TEST_KEY")
    with pytest.raises(ServerError, match="label.server.api_key_env: the variable COMMENTCLF_TEST_KEY is not set"):
        teacher(params(server.url, api_key_env="COMMENTCLF_TEST_KEY"), tmp_path)


def test_few_shot_examples_come_from_the_train_rows_only(tmp_path, monkeypatch):
    shots = draw_shots(["a", "b", "c", "d", "e"], ["x", "y", "x", "y", "x"], ["x", "y"], 2, seed=0)
    assert sorted(label for _, label in shots) == ["x", "x", "y", "y"]
    assert shots == draw_shots(["a", "b", "c", "d", "e"], ["x", "y", "x", "y", "x"], ["x", "y"], 2, seed=0)

    # llm_label's scoring hands the server teacher the train split alone: no dev or pool text in its prompt
    cfg = params("http://127.0.0.1:9/v1", shots=2)
    cfg = cfg.model_copy(update={"label": cfg.label.model_copy(update={"teachers": ["logreg", "llm_server"]})})
    import polars as pl

    def split(prefix, n):
        return pl.DataFrame({"text": [f"{prefix} {i}" for i in range(n)], "label": [LABELS[i % 3] for i in range(n)]})

    pool = pl.DataFrame({"id": ["p0", "p1"], "text": ["pool 0", "pool 1"]})
    rows = labelling.LabellingRows.from_splits(split("train", 9), split("dev", 6), pool, cfg)
    built = {}

    def spy(train_texts, train_labels, cfg, cache):
        built["teacher"] = server_teacher(train_texts, train_labels, cfg, cache)
        raise KeyboardInterrupt  # stop before the encoder loads

    monkeypatch.setattr(labelling, "server_teacher", spy)
    with pytest.raises(KeyboardInterrupt):
        labelling.score(rows, cfg, "unused", tmp_path, tmp_path, tmp_path / "cache.sqlite")
    prefix = built["teacher"].prompt.prefix
    assert sum(f"train {i}\n" in prefix for i in range(9)) == 6  # 2 per label
    assert "dev " not in prefix and "pool " not in prefix


def test_loopback_addresses():
    assert is_loopback("http://127.0.0.1:8080/v1") and is_loopback("http://localhost:1/v1")
    assert is_loopback("http://[::1]:8000/v1")
    assert not is_loopback("https://api.openai.com/v1") and not is_loopback("http://10.0.0.5:8000/v1")
