import numpy as np

from commentclf.benchmark import bootstrap_ci, latency_ms, markdown, model_entry, throughput

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]
RNG = np.random.default_rng(0)
GOLD = list(RNG.choice(LABELS, 200, p=[0.5, 0.2, 0.3]))
NOISY = [g if RNG.random() < 0.7 else str(RNG.choice(LABELS)) for g in GOLD]


def test_bootstrap_interval_brackets_the_estimate_and_shrinks_with_more_rows():
    entry = model_entry(GOLD, NOISY, LABELS, "pro_russia", 300, 0, {}, 0.0, None)
    low, high = entry["macro_f1_ci"]
    assert low < entry["macro_f1"] < high and high - low < 0.3
    wide = bootstrap_ci(GOLD[:40], NOISY[:40], LABELS, "pro_russia", 300, 0)[0]
    assert wide[1] - wide[0] > high - low
    assert bootstrap_ci(GOLD, GOLD, LABELS, "pro_russia", 100, 0) == ([1.0, 1.0], [1.0, 1.0])
    assert bootstrap_ci(GOLD, NOISY, LABELS, "pro_russia", 100, 7) == bootstrap_ci(
        GOLD, NOISY, LABELS, "pro_russia", 100, 7
    )


def test_latency_times_each_call_after_warm_up():
    calls = []
    p50, p95 = latency_ms(calls.append, ["a", "b", "c"], runs=10, warmup=2)
    assert len(calls) == 12 and calls[:3] == ["a", "b", "a"] and 0 <= p50 <= p95


def test_throughput_covers_at_least_one_batch():
    seen = []
    rate = throughput(lambda batch: seen.append(len(batch)), ["x"] * 5, batch=8)
    assert seen == [8, 8] and rate > 0  # warm-up, then the texts repeated to one full batch


def test_markdown_lists_every_model():
    entry = model_entry(
        GOLD,
        NOISY,
        LABELS,
        "pro_russia",
        100,
        0,
        dict.fromkeys(("p50_bs1_1t", "p95_bs1_1t", "p50_bs1", "p95_bs1"), 1.0),
        10.0,
        12.3,
    )
    hardware = {
        "cpu": "test cpu",
        "logical_cores": 2,
        "torch": "t",
        "onnxruntime": "o",
        "text_chars": 100.0,
        "all_threads": 2,
        "throughput_batch": 8,
        "bootstrap": 100,
    }
    table = markdown({"test_size": 200, "hardware": hardware, "models": {"a": entry, "b": entry}}, LABELS, "pro_russia")
    assert "| a | " in table and "| b | " in table and "200 comments" in table and "test cpu" in table
