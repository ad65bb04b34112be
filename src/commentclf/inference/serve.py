"""HTTP service for the int8 ONNX student (FastAPI; `pip install -e '.[serve]'`).

    GET  /health          -> {"status", "model_version", "labels", "max_length_tokens", "max_batch", ...}
    POST /predict         {"text": "..."}          -> {"label", "scores": {label: probability}, "set": [label, ...]}
    POST /predict/batch   {"texts": ["...", ...]}  -> {"predictions": [{"label", "scores", "set"}, ...]}

`set` is the conformal prediction set at the server's `alpha` (commentclf.conformal: it holds the true label
at least 1 - alpha of the time, per class); with `abstain`, `label` is null where the set is not one class.

Empty or whitespace-only text, a non-string, or more than `max_batch` texts -> 422 with a message. A
request body over MAX_BODY_BYTES -> 413 before it is read whole (a comment's meaning is in its first
`student.max_length` tokens; nothing needs megabytes). Long texts are cut at the model's token limit
(characters past MAX_CHARS are dropped before tokenising, which changes nothing at that limit). The model
loads once, at start-up.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 64
MAX_CHARS = 20_000
MAX_BODY_BYTES = 1_000_000


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, by its Content-Length or, for a chunked
    body, as soon as the bytes received pass the limit (Starlette itself reads any size). In the chunked case
    the app is told the client left, and whatever it answers to that is dropped: the 413 is already sent."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and int(length) > self.max_bytes:
            return await self._reject(scope, receive, send)
        received, rejected = 0, False

        async def limited_receive():
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request" and not rejected:
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await self._reject(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not rejected:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _reject(self, scope, receive, send):
        from starlette.responses import JSONResponse

        response = JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, status_code=413)
        await response(scope, receive, send)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("text must not be empty or whitespace")
    return text[:MAX_CHARS]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="one comment")

    @field_validator("text")
    @classmethod
    def _check(cls, text: str) -> str:
        return _non_empty(text)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} comments")

    @field_validator("texts")
    @classmethod
    def _each(cls, texts: list[str]) -> list[str]:
        return [_non_empty(t) for t in texts]


class Prediction(BaseModel):
    label: str | None
    scores: dict[str, float]
    set: list[str]


def create_app(
    model_dir: str | Path = "models/onnx/int8",
    max_length: int = 128,
    prefix: str = "query: ",
    threads: int | None = None,
    alpha: float = 0.1,
    abstain: bool = False,
):
    from fastapi import FastAPI

    from commentclf.conformal import set_labels
    from commentclf.student.onnx_model import OnnxClassifier

    model = OnnxClassifier(model_dir, threads=threads, max_length=max_length, prefix=prefix)
    model.prediction_sets(model.predict_proba(["warm-up"]), alpha)  # a model without sets fails here, not per call
    version = model.version
    app = FastAPI(title="commentclf", version=version)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    def predict(texts: list[str]) -> list[Prediction]:
        proba = model.predict_proba(texts)
        sets = model.prediction_sets(proba, alpha)
        return [
            Prediction(
                label=label,
                scores={name: round(float(x), 6) for name, x in zip(model.labels, p)},
                set=[name for name, inside in zip(model.labels, chosen) if inside],
            )
            for label, p, chosen in zip(set_labels(proba, sets, model.labels, abstain), proba, sets)
        ]

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "model_version": version,
            "model_file": str(model.file),
            "labels": model.labels,
            "max_length_tokens": max_length,
            "max_batch": MAX_BATCH,
            "max_body_bytes": MAX_BODY_BYTES,
            "alpha": alpha,
            "abstain": abstain,
        }

    @app.post("/predict", response_model=Prediction)
    def predict_one(req: PredictRequest) -> Prediction:
        return predict([req.text])[0]

    @app.post("/predict/batch")
    def predict_batch(req: BatchRequest) -> dict:
        return {"predictions": predict(req.texts)}

    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: Path = Path("models/onnx/int8"),
    params: Path = Path("params.yaml"),
    alpha: float = 0.1,
    abstain: bool = False,
) -> None:
    """Serve the int8 ONNX student over HTTP (FastAPI + uvicorn, the `serve` extra). Each answer carries its
    conformal set at `alpha`; with `abstain`, no label where the set is not a single class."""
    import uvicorn

    from commentclf.config import load_params

    cfg = load_params(params)
    app = create_app(model, cfg.student.max_length, cfg.student.prefix, alpha=alpha, abstain=abstain)
    uvicorn.run(app, host=host, port=port)


if __name__ == "__main__":  # `python -m commentclf.inference.serve`: what `commentclf serve` runs
    import typer

    typer.run(serve)
