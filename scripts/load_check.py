"""Load check of `commentclf serve`: N requests, C concurrent, bounded and self-stopping, loopback only.

    python scripts/load_check.py --url http://127.0.0.1:8000 --requests 1000 --concurrency 8

Prints one JSON line: requests, errors, p50/p95/max latency in ms, requests per second.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlparse

import httpx
import typer

TEXTS = [
    "Il faut continuer à aider l'Ukraine, sans faiblir.",
    "L'OTAN a provoqué cette guerre, arrêtons les sanctions.",
    "Quelqu'un sait quand sort le prochain hors-série ?",
    "Les Ukrainiens tiennent bon malgré les bombardements.",
]


async def _run(url: str, n: int, concurrency: int, timeout_s: float) -> dict:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load {host}: this check only targets the loopback interface")
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    deadline = time.perf_counter() + timeout_s

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            start = time.perf_counter()
            try:
                r = await client.post(f"{url}/predict", json={"text": TEXTS[i % len(TEXTS)]})
                if r.status_code != 200 or "label" not in r.json():
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(1000 * (time.perf_counter() - start))

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat = sorted(latencies)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None  # noqa: E731
    return {
        "requests": len(lat),
        "not_sent": n - len(lat),
        "errors": errors,
        "concurrency": concurrency,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "max_ms": lat[-1] if lat else None,
        "requests_per_s": len(lat) / elapsed if elapsed else None,
    }


def main(
    url: str = "http://127.0.0.1:8000", requests: int = 1000, concurrency: int = 8, timeout_s: float = 300.0
) -> dict:
    result = asyncio.run(_run(url.rstrip("/"), requests, concurrency, timeout_s))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    typer.run(main)
