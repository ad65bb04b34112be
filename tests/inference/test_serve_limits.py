"""The request-body cap of `commentclf serve`, on a real uvicorn server on 127.0.0.1 with a stand-in model
(the model plays no part in the cap; tests/inference/test_serve.py checks it again on the real service)."""

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from commentclf.inference.serve import BodyLimit, PredictRequest


@pytest.fixture(scope="module")
def url():
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=1000)

    @app.post("/predict")
    def predict(req: PredictRequest) -> dict:
        return {"chars": len(req.text)}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_body_under_the_cap_passes(url):
    r = httpx.post(f"{url}/predict", json={"text": "x" * 900})
    assert r.status_code == 200 and r.json() == {"chars": 900}


def test_a_body_over_the_cap_gets_413_by_its_length(url):
    r = httpx.post(f"{url}/predict", json={"text": "x" * 2000})
    assert r.status_code == 413 and "request body over 1000 bytes" in r.text


def test_a_chunked_body_gets_413_as_it_passes_the_cap(url):
    def chunks():
        for _ in range(10):
            yield b"x" * 300

    r = httpx.post(f"{url}/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "request body over 1000 bytes" in r.text
    assert httpx.post(f"{url}/predict", json={"text": "still serving"}).status_code == 200
