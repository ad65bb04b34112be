"""Throughput of the LLM classifier's two prediction modes on the same model, texts and CPU.

    python scripts/bench_llm_modes.py [--adapter models/llm] [--split-dir data/split] [--n 64]
        [--batch-sizes 4,8,16] [--threads 0]

For each batch size both modes run twice, alternating (the second pass is reported, after warm-up). Prints
one JSON line per batch size, then one with each mode at its fastest batch size. Both modes batch comments
of similar length: `generate` pads a batch to its longest prompt, `score` packs it into one unpadded row.
"""

import json
import time
from pathlib import Path

import torch
import typer

from commentclf.data import read_split
from commentclf.llm.classifier import LLMClassifier


def main(
    adapter: Path = Path("models/llm"),
    split_dir: Path = Path("data/split"),
    n: int = 64,
    batch_sizes: str = "4,8,16",
    threads: int = 0,
    max_new_tokens: int = 16,
) -> None:
    if threads:
        torch.set_num_threads(threads)
    texts = (read_split(split_dir, "dev")["text"].to_list() + read_split(split_dir, "test")["text"].to_list())[:n]
    clf = LLMClassifier.load(adapter)
    tokens = [len(clf.tokens.prompt(clf.tokenizer, t)) for t in texts]
    rates: dict[str, dict[int, float]] = {"generate": {}, "score": {}}
    for batch_size in [int(b) for b in batch_sizes.split(",")]:
        timings = {}
        for _ in range(2):
            start = time.perf_counter()
            clf.generate_raw(texts, batch_size, max_new_tokens)
            timings["generate"] = time.perf_counter() - start
            start = time.perf_counter()
            clf.score(texts, batch_size)
            timings["score"] = time.perf_counter() - start
        for mode in rates:
            rates[mode][batch_size] = len(texts) / timings[mode]
        row = {"batch_size": batch_size, **{f"{m}_per_s": round(r[batch_size], 2) for m, r in rates.items()}}
        print(json.dumps(row | {"score_speedup": round(timings["generate"] / timings["score"], 2)}), flush=True)
    best = {mode: max(r, key=r.get) for mode, r in rates.items()}
    speedup = rates["score"][best["score"]] / rates["generate"][best["generate"]]
    print(
        json.dumps(
            {
                "texts": len(texts),
                "threads": torch.get_num_threads(),
                "prompt_tokens_mean": round(sum(tokens) / len(tokens), 1),
                "prefix_tokens": len(clf.tokens.prefix),
                "best_batch_size": best,
                "best_per_s": {mode: round(rates[mode][b], 2) for mode, b in best.items()},
                "score_speedup_best_vs_best": round(speedup, 2),
            }
        )
    )


if __name__ == "__main__":
    typer.run(main)
