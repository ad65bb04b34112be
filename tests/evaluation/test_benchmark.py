import numpy as np

from commentclf.evaluation.benchmark import bootstrap_ci, latency_ms, markdown, model_entry, throughput

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
    # calibration rows: a fitted temperature, or the ensemble's shipped calibrations; the conformal block
    calibration = {f"{k}{s}": 0.1 for k in ("ece", "brier", "nll") for s in ("", "_uncalibrated")}
    models = {"a": entry | calibration | {"temperature": 1.5}, "ensemble": entry | calibration}
    conformal = {
        "alpha": 0.1,
        "calibration_rows": 30,
        "coverage": dict.fromkeys(LABELS, 0.9),
        "singleton_share": 0.5,
        "singleton_accuracy": None,
        "mean_set_size": 1.6,
    }
    report = {"test_size": 200, "hardware": hardware, "models": models, "deployed": "a", "conformal": conformal}
    table = markdown(report, LABELS, "pro_russia")
    assert "| a | 1.50 |" in table and "| ensemble | shipped |" in table
    assert "alpha 0.1" in table and "| 0.900 | 0.900 | 0.900 | 0.500 | n/a | 1.60 |" in table


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    from commentclf.evaluation.benchmark import paired_difference

    gold = ["a", "b", "c", "a", "b", "c", "a", "a"]
    pred = ["a", "b", "b", "a", "c", "c", "b", "a"]
    d = paired_difference(gold, pred, pred, ["a", "b", "c"], "b", 200, 0)
    assert d == {"macro_f1": 0.0, "macro_f1_ci": [0.0, 0.0], "minority_f1": 0.0, "minority_f1_ci": [0.0, 0.0]}


def test_paired_difference_sees_a_better_model():
    from commentclf.evaluation.benchmark import paired_difference

    rng = np.random.default_rng(0)
    gold = rng.choice(["a", "b", "c"], 300).tolist()
    better = [g if rng.random() < 0.8 else "a" for g in gold]
    worse = [g if rng.random() < 0.5 else "a" for g in gold]
    d = paired_difference(gold, better, worse, ["a", "b", "c"], "b", 300, 0)
    assert d["macro_f1"] > 0 and d["macro_f1_ci"][0] > 0 and d["minority_f1_ci"][0] > 0
    flipped = paired_difference(gold, worse, better, ["a", "b", "c"], "b", 300, 0)
    assert np.isclose(flipped["macro_f1"], -d["macro_f1"])


def test_comparisons_take_the_best_seed_only_model_and_the_teachers():
    from commentclf.evaluation.benchmark import comparisons

    gold = ["a", "b", "a", "b"]
    predictions = {
        "setfit": ["a", "a", "a", "a"],
        "seed_only_logreg": ["a", "b", "a", "a"],
        "ensemble": ["a", "b", "b", "b"],
        "student_onnx_int8": gold,
    }
    report = {
        "deployed": "student_onnx_int8",
        "models": {"setfit": {"macro_f1": 0.33}, "seed_only_logreg": {"macro_f1": 0.73}, "ensemble": {}},
    }
    out = comparisons(report, predictions, gold, ["a", "b"], "b", 100, 0)
    assert out["best_seed_only"] == "seed_only_logreg"
    assert set(out) == {
        "deployed",
        "best_seed_only",
        "student_onnx_int8 - setfit",
        "student_onnx_int8 - seed_only_logreg",
        "student_onnx_int8 - ensemble",
    }
    assert out["student_onnx_int8 - setfit"]["macro_f1"] > 0 and out["student_onnx_int8 - ensemble"]["macro_f1"] > 0
