"""Throughput of the LLM classifier's two prediction modes on the same model, texts, batch size and CPU.

    python scripts/bench_llm_modes.py [--adapter models/llm] [--n 48] [--batch-size 8] [--threads 0]

Both modes run twice, alternating (the second pass is reported, after warm-up); prints one JSON line.
"""

import json
import time
from pathlib import Path

import torch
import typer

from commentclf.data import read_split
from commentclf.llm import LLMClassifier


def main(
    adapter: Path = Path("models/llm"), n: int = 48, batch_size: int = 8, threads: int = 0, max_new_tokens: int = 16
) -> None:
    if threads:
        torch.set_num_threads(threads)
    texts = (read_split("dev").text.tolist() + read_split("test").text.tolist())[:n]
    clf = LLMClassifier.load(adapter)
    timings = {}
    for _ in range(2):
        start = time.perf_counter()
        clf.generate_raw(texts, batch_size, max_new_tokens)
        timings["generate"] = time.perf_counter() - start
        start = time.perf_counter()
        clf.score(texts, batch_size)
        timings["score"] = time.perf_counter() - start
    tokens = [len(clf.tokens.prompt(clf.tokenizer, t)) for t in texts]
    print(
        json.dumps(
            {
                "texts": len(texts),
                "batch_size": batch_size,
                "threads": torch.get_num_threads(),
                "prompt_tokens_mean": sum(tokens) / len(tokens),
                "prefix_tokens": len(clf.tokens.prefix),
                "generate_per_s": len(texts) / timings["generate"],
                "score_per_s": len(texts) / timings["score"],
                "score_speedup": timings["generate"] / timings["score"],
            }
        )
    )


if __name__ == "__main__":
    typer.run(main)
