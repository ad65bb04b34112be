"""The `llm_server` teacher: an LLM behind any OpenAI-compatible server (llama.cpp, vLLM, Ollama, a hosted API)
answers the project's classification prompt (commentclf.llm.prompts), zero- or k-shot.

* Probabilities: the answer token's `top_logprobs` where the server gives them (the completions prompt ends
  with the answer's opening `{"label": "`, so that token begins the answer word); otherwise, or where no
  alternative begins an answer word, `samples` answers at temperature 1, parsed and counted. Which of the two
  served each comment is counted.
* Every answer is cached on disk (SQLite) under (server model, prompt hash, text id) as it arrives: a rerun, a
  crash or a bigger pool asks only what is missing, and a killed run resumes.
* Timeouts, 429, 5xx, dropped connections and unreadable answers are retried with backoff, then become a
  uniform row counted by kind (the ensemble weighs this teacher by its out-of-fold log-loss like any other);
  an answer unreadable at every try is the model's and is cached, the transient kinds are asked again next
  run. Past `max_failures` the stage stops. A wrong URL, key or model name stops it before the first comment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from rich.console import Console

from commentclf.config import LabelServerConfig, Params
from commentclf.data import text_id
from commentclf.errors import ServerError
from commentclf.llm.parsing import parse_label
from commentclf.llm.prompts import ANSWER_START, ClassificationPrompt, classification_prompt

_LABEL_OPENED = re.compile(r'"label"\s*:\s*"$')


def draw_shots(texts: list[str], labels: list[str], names: list[str], k: int, seed: int) -> list[tuple[str, str]]:
    """k examples per label from the given rows (the caller passes the train rows only), interleaved by label
    in a seeded order: [(text, label name), ...]. A label with fewer than k rows gives what it has."""
    rng = random.Random(seed)
    by_label = {name: [t for t, y in zip(texts, labels) if y == name] for name in names}
    picked = {name: rng.sample(rows, min(k, len(rows))) for name, rows in by_label.items()}
    shots = [(picked[name][i], name) for i in range(k) for name in names if i < len(picked[name])]
    rng.shuffle(shots)
    return shots


def label_mass(top: dict[str, float], answers: list[str]) -> np.ndarray | None:
    """Probability of each answer word from one token's alternatives {token: logprob}: a token counts for
    the answers it begins (or that it contains whole), shared between them when it begins several; None when
    no alternative begins any answer."""
    mass = np.zeros(len(answers))
    folded = [a.casefold() for a in answers]
    for token, logprob in top.items():
        t = token.strip().casefold()
        hits = [j for j, a in enumerate(folded) if t and (a.startswith(t) or t.startswith(a))]
        for j in hits:
            mass[j] += math.exp(logprob) / len(hits)
    return mass / mass.sum() if mass.sum() > 0 else None


class _Failure(Exception):
    def __init__(self, kind: str, retry_after: float | None = None):
        super().__init__(kind)
        self.kind, self.retry_after = kind, retry_after


class AnswerCache:
    """SQLite file of answers: (model, prompt hash, text id) -> probabilities and how they were obtained.
    Written by one thread (the caller's); each answer is committed as it arrives."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (model TEXT, prompt TEXT, text_id TEXT, proba TEXT, source TEXT,"
            " PRIMARY KEY (model, prompt, text_id))"
        )

    def get(self, model: str, prompt: str, text_ids: list[str]) -> dict[str, tuple[list[float], str]]:
        found = {}
        for i in range(0, len(text_ids), 500):  # SQLite's bound on query parameters
            chunk = text_ids[i : i + 500]
            rows = self.db.execute(
                f"SELECT text_id, proba, source FROM answers WHERE model = ? AND prompt = ? AND text_id IN "
                f"({','.join('?' * len(chunk))})",
                [model, prompt, *chunk],
            )
            found.update({tid: (json.loads(p), src) for tid, p, src in rows})
        return found

    def put(self, model: str, prompt: str, tid: str, proba: list[float], source: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", (model, prompt, tid, json.dumps(proba), source)
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServerStats:
    """What the teacher did, for metrics/label.json (no key, no URL credentials, no comment text)."""

    rows: int = 0
    cache_hits: int = 0
    asked: int = 0
    requests: int = 0
    retries: int = 0
    failures: Counter = field(default_factory=Counter)
    """Comments asked this run that ended as the uniform fallback, by kind (the last try's)."""
    source: Counter = field(default_factory=Counter)
    """Comments answered this run, by where their probabilities came from (logprobs, samples)."""
    cached_source: Counter = field(default_factory=Counter)
    """Comments answered from the cache, by the same sources (`unparsable`: the fallback, kept because the
    model gave no readable answer in any try; transient failures are not kept and are asked again)."""
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "cache_hits": self.cache_hits,
            "asked": self.asked,
            "requests": self.requests,
            "retries": self.retries,
            "failures": dict(self.failures),
            "failed_rows": sum(self.failures.values()),
            "probability_source": dict(self.source),
            "cache_hits_by_source": dict(self.cached_source),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "seconds": round(self.seconds, 1),
            "rows_per_s": round(self.asked / self.seconds, 2) if self.seconds else None,
        }


class ServerTeacher:
    """Called on a list of comments, returns their (n, labels) probabilities from the server (cached)."""

    def __init__(
        self,
        cfg: LabelServerConfig,
        prompt: ClassificationPrompt,
        labels: list[str],
        answers: list[str],
        cache_path: Path,
    ):
        self.cfg, self.prompt, self.labels, self.answers = cfg, prompt, labels, answers
        self.cache = AnswerCache(cache_path)
        self.stats = ServerStats()
        # the cache key: everything that shapes an answer besides the comment and the model
        shape = [cfg.endpoint, prompt.prefix, prompt.suffix, answers, cfg.top_logprobs, cfg.samples]
        self.prompt_hash = hashlib.sha256(json.dumps(shape, ensure_ascii=False).encode()).hexdigest()[:20]
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        if cfg.api_key_env and not key:
            raise ServerError(f"label.server.api_key_env: the variable {cfg.api_key_env} is not set")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=cfg.base_url.rstrip("/") + "/", headers=headers, timeout=cfg.timeout_s)
        self.logprobs = True  # until the server shows it gives none
        self.checked = False
        self._lock = threading.Lock()  # the workers' counts

    def check_server(self) -> None:
        """Before the first comment: the server answers, takes the key and serves the model."""
        if not is_loopback(self.cfg.base_url):
            host = urlparse(self.cfg.base_url).hostname
            Console(stderr=True).print(f"label.server: the comments are sent to {host}, outside this machine.")
        try:
            r = self.http.get("models")
        except httpx.HTTPError as err:
            raise ServerError(
                f"label.server.base_url: no server answers at {self.cfg.base_url} ({type(err).__name__})"
            ) from None
        if r.status_code in (401, 403):
            raise ServerError(f"label.server.api_key_env: {self.cfg.base_url} refused the key (HTTP {r.status_code})")
        try:
            served = [m["id"] for m in r.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ServerError(
                f"label.server.base_url: {self.cfg.base_url}/models is not an OpenAI model list (HTTP {r.status_code})"
            ) from None
        if self.cfg.model not in served:
            raise ServerError(
                f"label.server.model: {self.cfg.model!r} is not served at {self.cfg.base_url} (it serves {served})"
            )
        self.checked = True

    def __call__(self, texts: list[str]) -> np.ndarray:
        start = time.perf_counter()
        ids = [text_id(t) for t in texts]
        cached = self.cache.get(self.cfg.model, self.prompt_hash, ids)
        out = np.full((len(texts), len(self.labels)), 1.0 / len(self.labels))
        todo = {}
        for i, tid in enumerate(ids):
            if tid in cached:
                out[i] = cached[tid][0]
                self.stats.cached_source[cached[tid][1]] += 1
            else:
                todo.setdefault(tid, []).append(i)
        self.stats.rows += len(texts)
        self.stats.cache_hits += len(texts) - sum(len(rows) for rows in todo.values())
        if todo and not self.checked:  # all cached: no server needed
            self.check_server()
        allowed = self.cfg.max_failures * len(todo)
        failed = 0
        pool = ThreadPoolExecutor(self.cfg.concurrency)
        futures = {pool.submit(self._answer, texts[rows[0]]): tid for tid, rows in todo.items()}
        try:
            for future in as_completed(futures):
                tid = futures[future]
                proba, source = future.result()
                self.stats.asked += 1
                if proba is None:
                    self.stats.failures[source] += 1
                    failed += 1
                    if source == "unparsable":  # the model's own answer, every try: kept, so a rerun does not ask
                        self.cache.put(self.cfg.model, self.prompt_hash, tid, out[todo[tid][0]].tolist(), source)
                    if failed > allowed:
                        raise ServerError(self._too_many_failures(len(todo)))
                    continue
                self.stats.source[source] += 1
                self.cache.put(self.cfg.model, self.prompt_hash, tid, proba, source)
                out[todo[tid]] = proba
        finally:  # on an error, the requests not yet sent are dropped, not waited for
            pool.shutdown(wait=True, cancel_futures=True)
        self.stats.seconds += time.perf_counter() - start
        return out

    def _too_many_failures(self, n: int) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.stats.failures.items())
        return (
            f"label.server: more than {self.cfg.max_failures:.0%} of the {n} comments asked failed ({kinds}) at "
            f"{self.cfg.base_url}; answers so far are cached, a rerun asks only the rest (label.server.max_failures)"
        )

    def _answer(self, text: str) -> tuple[list[float] | None, str]:
        """(probabilities, source) or (None, failure kind), after the retries. The answer token's alternatives
        first; where none of them begins an answer word (a weak model's first token is often something else),
        the comment's answers are sampled and parsed instead, for that comment."""
        kind = "unparsable"
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
            try:
                proba = self._logprob_answer(text) if self.logprobs else None
                if proba is not None:
                    return proba, "logprobs"
                return self._sampled_answer(text, first_seed=attempt * self.cfg.samples), "samples"
            except _Failure as failure:
                kind = failure.kind
                delay = failure.retry_after if failure.retry_after is not None else self.cfg.backoff_s * 2**attempt
                if attempt < self.cfg.retries:
                    time.sleep(delay)
        return None, kind

    def _post(self, text: str, **body) -> dict:
        full = self.prompt.full(text)
        if self.cfg.endpoint == "completions":
            path, body = "completions", {"prompt": full + ANSWER_START, **body}
        else:
            path, body = "chat/completions", {"messages": [{"role": "user", "content": full}], **body}
        with self._lock:
            self.stats.requests += 1
        try:
            r = self.http.post(path, json={"model": self.cfg.model, **body})
        except httpx.TimeoutException:
            raise _Failure("timeout") from None
        except httpx.TransportError:
            raise _Failure("connection") from None
        if r.status_code == 429:
            after = r.headers.get("retry-after")
            raise _Failure("http_429", float(after) if after and after.replace(".", "", 1).isdigit() else None)
        if r.status_code >= 500:
            raise _Failure("http_5xx")
        if r.status_code in (401, 403, 404):
            raise ServerError(f"label.server: {self.cfg.base_url}/{path} answered HTTP {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:  # e.g. a comment over the model's context: this row only
            raise _Failure("http_4xx")
        try:
            answer = r.json()
            choice = answer["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Failure("unparsable") from None
        usage = answer.get("usage") or {}
        with self._lock:
            self.stats.tokens_in += int(usage.get("prompt_tokens") or 0)
            self.stats.tokens_out += int(usage.get("completion_tokens") or 0)
        if choice.get("finish_reason") == "content_filter":
            raise _Failure("refusal")
        return choice

    def _logprob_answer(self, text: str) -> list[float] | None:
        """The answer words' probabilities from the answer token's alternatives; None where none of them
        begins an answer word, or where the server sends no logprobs (then it is not asked for them again)."""
        if self.cfg.endpoint == "completions":
            choice = self._post(text, max_tokens=1, temperature=0, logprobs=self.cfg.top_logprobs)
            logprobs = choice.get("logprobs") or {}
            top = (logprobs.get("top_logprobs") or [None])[0]
        else:
            choice = self._post(text, max_tokens=16, temperature=0, logprobs=True, top_logprobs=self.cfg.top_logprobs)
            logprobs = choice.get("logprobs") or {}
            top = _chat_answer_token(logprobs.get("content") or [])
        if not logprobs:
            self.logprobs = False
        mass = label_mass(top, self.answers) if top else None
        return None if mass is None else mass.tolist()

    def _sampled_answer(self, text: str, first_seed: int) -> list[float]:
        counts = np.zeros(len(self.labels))
        for seed in range(first_seed, first_seed + self.cfg.samples):
            choice = self._post(text, max_tokens=16, temperature=1.0, seed=seed)
            if self.cfg.endpoint == "completions":
                written = ANSWER_START + (choice.get("text") or "")
            else:
                written = (choice.get("message") or {}).get("content") or ""
            parsed = parse_label(written, self.answers)
            if parsed.label is not None:
                counts[self.answers.index(parsed.label)] += 1
        if not counts.sum():
            raise _Failure("unparsable")
        return (counts / counts.sum()).tolist()


def _chat_answer_token(content: list[dict]) -> dict[str, float] | None:
    """The alternatives of the first token written after `"label": "` in a chat reply's logprobs."""
    written = ""
    for token in content:
        if _LABEL_OPENED.search(written):
            return {alt["token"]: alt["logprob"] for alt in token.get("top_logprobs") or []} or None
        written += token.get("token", "")
    return None


def server_teacher(train_texts: list[str], train_labels: list[str], cfg: Params, cache: Path) -> ServerTeacher:
    """The `llm_server` teacher, its k-shot examples drawn from the given rows: the train split's alone, so the
    dev rows stay out-of-fold (llm_label and the benchmark draw the same examples from the same rows)."""
    names, answers = cfg.label_names, cfg.llm_answers
    shots = draw_shots(train_texts, train_labels, names, cfg.label.server.shots, cfg.seed)
    prompt = classification_prompt(cfg.labels, cfg.language, cfg.context, answers)
    prompt = prompt.with_examples([(text, answers[label]) for text, label in shots])
    return ServerTeacher(cfg.label.server, prompt, names, [answers[n] for n in names], cache)
