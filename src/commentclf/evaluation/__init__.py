"""Evaluation: every model on the same held-out test split, and what the runs leave behind
(`benchmark`, `scripts/report.py`).

* `runner`    — the benchmark stage's work: the models loaded side by side and measured;
* `benchmark` — bootstrap intervals, paired differences, latency, throughput, serve's footprint, the table;
* `reports`   — named runs under `reports/<dataset>/`, the README's results tables, run-to-run comparison.
"""
