import json
import subprocess

import pytest

from commentclf.evaluation.reports import compare_table, render_readme, save_report


def fake_run(tmp_path):
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "profiles").mkdir()
    (run / "profiles" / "x.yaml").write_text("seed: 1\n")
    (run / "params.yaml").write_text("seed: 1\nstudent:\n  lr: 0.1\n")  # the profile plus a -S override
    entry = {
        "macro_f1": 0.5,
        "macro_f1_ci": [0.4, 0.6],
        "minority_f1": 0.3,
        "minority_f1_ci": [0.2, 0.4],
        "latency_ms": {"p50_bs1_1t": 9.87},
        "size_mb": 12.0,
    }
    bench = {
        "test_size": 7,
        "hardware": {"cpu": "cpu", "logical_cores": 2, "text_chars": 80.0},
        "models": {"setfit": entry, "student_onnx_int8": entry | {"size_mb": None}},
    }
    (run / "metrics" / "benchmark.json").write_text(json.dumps(bench))
    (run / "metrics" / "benchmark.md").write_text(
        "| model | accuracy | macro-F1 [95 % CI] | pro_russia F1 [95 % CI] |\n"
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@l"]
    subprocess.run(git + ["init", "-q"], cwd=run, check=True)
    subprocess.run(git + ["add", "-A"], cwd=run, check=True)
    subprocess.run(git + ["commit", "-qm", "x"], cwd=run, check=True)
    return run


def test_save_then_render_fills_only_the_named_block(tmp_path):
    run = fake_run(tmp_path)
    info = save_report(run, tmp_path / "reports" / "toy", "x")
    assert len(info["commit"]) == 40 and info["profile"] == "x" and info["uncommitted_changes"] == []
    assert (tmp_path / "reports/toy/profile.yaml").read_text() == "seed: 1\n"
    assert "lr: 0.1" in (tmp_path / "reports/toy/params.yaml").read_text()
    readme = (
        "intro\n<!-- results:toy -->\nstale\n<!-- /results:toy -->\n"
        "<!-- results:other -->\nkeep\n<!-- /results:other -->\n"
    )
    out = render_readme(readme, tmp_path / "reports")
    block = out.split("<!-- results:toy -->")[1].split("<!-- /results:toy -->")[0]
    assert "stale" not in block and "| setfit | 0.500 [0.40, 0.60] | 0.300 [0.20, 0.40] | 9.9 | 12.0 |" in block
    assert "| student_onnx_int8 |" in block and "| n/a |" in block and "pro_russia F1" in block
    assert "keep" in out and render_readme(out, tmp_path / "reports") == out


def test_a_run_with_prevalence_adds_its_shares_calibration_and_sets_to_the_table(tmp_path):
    run = fake_run(tmp_path)
    bench = json.loads((run / "metrics/benchmark.json").read_text())
    bench["deployed"] = "student_onnx_int8"
    bench["models"]["student_onnx_int8"] |= {"ece": 0.031, "ece_uncalibrated": 0.12}
    bench["models"]["llm"] = bench["models"]["setfit"]  # not in the README's short table
    bench["models"]["seed_only_logreg"] = bench["models"]["setfit"]  # nor the best seed-only baseline: benchmark.md
    same = {"macro_f1": 0.0, "macro_f1_ci": [0.0, 0.0], "minority_f1": 0.0, "minority_f1_ci": [0.0, 0.0]}
    bench["comparisons"] = {
        "deployed": "student_onnx_int8",
        "best_seed_only": "seed_only_logreg",
        "student_onnx_int8 - setfit": same,
        "student_onnx_int8 - seed_only_logreg": same,
    }
    bench["conformal"] = {
        "alpha": 0.1,
        "coverage": {"a": 0.9, "b": 0.88},
        "singleton_share": 0.6,
        "singleton_accuracy": 0.8,
    }
    (run / "metrics/benchmark.json").write_text(json.dumps(bench))
    prevalence = {
        "default_method": "pacc",
        "classes": {
            "a": {"true": 0.9, "estimate": 0.88, "low": 0.8, "high": 0.95},
            "b": {"true": 0.1, "estimate": 0.12, "low": 0.05, "high": 0.2},
        },
        "methods": {"cc": {"a": 0.7, "b": 0.3}, "pacc": {"a": 0.88, "b": 0.12}},
    }
    (run / "metrics/prevalence.json").write_text(json.dumps(prevalence))
    save_report(run, tmp_path / "reports" / "toy", "x")
    out = render_readme("<!-- results:toy -->\n<!-- /results:toy -->\n", tmp_path / "reports")
    assert "| b | 10.0 | 12.0 [5.0, 20.0] | 30.0 |" in out and "| llm |" not in out
    assert "| student_onnx_int8 - setfit |" in out and "seed_only_logreg" not in out
    assert "ECE 0.031 (uncalibrated 0.120)" in out and "coverage a 0.90, b 0.88; one label for 60 %" in out


def test_ceiling_gives_the_gap_recovered_at_the_top_of_the_report(tmp_path):
    from commentclf.evaluation.reports import add_ceiling

    entry = {
        "accuracy": 0.5,
        "macro_f1_ci": [0.4, 0.6],
        "minority_f1": 0.3,
        "minority_f1_ci": [0.2, 0.4],
        "f1": {"a": 0.5, "b": 0.3},
        "latency_ms": {"p50_bs1_1t": 1.0, "p95_bs1_1t": 2.0, "p50_bs1": 1.0, "p95_bs1": 2.0},
        "throughput_per_s": 10.0,
        "size_mb": 1.0,
    }
    same = {"macro_f1": 0.0, "macro_f1_ci": [0.0, 0.0], "minority_f1": 0.0, "minority_f1_ci": [0.0, 0.0]}
    bench = {
        "test_size": 10,
        "minority_label": "b",
        "hardware": {
            "cpu": "cpu",
            "logical_cores": 2,
            "torch": "t",
            "onnxruntime": "o",
            "text_chars": 80.0,
            "all_threads": 2,
            "throughput_batch": 8,
            "bootstrap": 100,
        },
        "models": {
            "setfit": entry | {"macro_f1": 0.44},
            "seed_only_logreg": entry | {"macro_f1": 0.46},
            "student_onnx_int8": entry | {"macro_f1": 0.49},
        },
        "comparisons": {
            "deployed": "student_onnx_int8",
            "best_seed_only": "seed_only_logreg",
            "student_onnx_int8 - setfit": same,
        },
    }
    (tmp_path / "benchmark.json").write_text(json.dumps(bench))
    add_ceiling(tmp_path)  # no ceiling.json: nothing changes
    assert "gap_recovered" not in json.loads((tmp_path / "benchmark.json").read_text())
    (tmp_path / "ceiling.json").write_text(json.dumps({"test": {"macro_f1": 0.51}}))
    add_ceiling(tmp_path)
    out = json.loads((tmp_path / "benchmark.json").read_text())
    assert out["ceiling_macro_f1"] == 0.51 and abs(out["gap_recovered"] - 0.6) < 1e-9  # (0.49-0.46)/(0.51-0.46)
    assert "gap recovered by the deployed student: 0.60" in (tmp_path / "benchmark.md").read_text()


def test_compare_lists_common_models_with_differences_and_refuses_other_test_sets(tmp_path):
    save_report(fake_run(tmp_path), tmp_path / "reports" / "a", "x")
    bench_b = json.loads((tmp_path / "reports/a/benchmark.json").read_text())
    bench_b["models"]["setfit"]["macro_f1"] = 0.55
    bench_b["models"]["setfit"]["minority_f1"] = 0.25
    del bench_b["models"]["student_onnx_int8"]
    (tmp_path / "reports/b").mkdir()
    (tmp_path / "reports/b/benchmark.json").write_text(json.dumps(bench_b))
    table = compare_table(tmp_path / "reports/a", tmp_path / "reports/b")
    assert "| setfit | 0.500 [0.40, 0.60] | 0.550 [0.40, 0.60] | +0.050 | 0.300 [0.20, 0.40] " in table
    assert "| -0.050 |" in table and "student_onnx_int8" not in table
    bench_b["test_size"] = 8
    (tmp_path / "reports/b/benchmark.json").write_text(json.dumps(bench_b))
    with pytest.raises(ValueError, match="different sets"):
        compare_table(tmp_path / "reports/a", tmp_path / "reports/b")


def write_predictions(report_dir, predicted: dict[str, list[str]]):
    import polars as pl

    gold = ["a", "a", "b", "b", "c", "c", "a"]
    frames = [
        pl.DataFrame({"model": [m] * 7, "id": [f"r{i}" for i in range(7)], "label": gold, "predicted": p})
        for m, p in predicted.items()
    ]
    pl.concat(frames).write_parquet(report_dir / "test_predictions.parquet")


def test_compare_gives_a_paired_interval_when_both_runs_kept_their_test_predictions(tmp_path):
    run = fake_run(tmp_path)
    bench = json.loads((run / "metrics/benchmark.json").read_text()) | {"minority_label": "c"}
    (run / "metrics/benchmark.json").write_text(json.dumps(bench))
    write_predictions(run / "metrics", {"setfit": ["a", "a", "b", "b", "c", "a", "a"]})
    save_report(run, tmp_path / "reports" / "a", "x")  # the predictions travel with the saved run
    assert (tmp_path / "reports/a/test_predictions.parquet").is_file()
    (tmp_path / "reports/b").mkdir()
    (tmp_path / "reports/b/benchmark.json").write_text((tmp_path / "reports/a/benchmark.json").read_text())
    write_predictions(tmp_path / "reports/b", {"setfit": ["a", "a", "b", "b", "c", "c", "a"]})
    table = compare_table(tmp_path / "reports/a", tmp_path / "reports/b", bootstrap=200)
    assert "paired 95 % bootstrap" in table
    row = next(line for line in table.splitlines() if line.startswith("| setfit |"))
    delta = row.split("|")[4].strip()  # b (all right) minus a (one wrong): positive, with an interval around it
    value, interval = delta.split(" [")
    low, high = (float(v) for v in interval.rstrip("]").split(", "))
    assert float(value) > 0 and low <= float(value) <= high
    same = compare_table(tmp_path / "reports/a", tmp_path / "reports/a", bootstrap=200)
    assert "| +0.000 [+0.000, +0.000] |" in same  # a run against itself
    write_predictions(tmp_path / "reports/b", {"setfit": ["a"] * 7})
    import polars as pl

    shifted = pl.read_parquet(tmp_path / "reports/b/test_predictions.parquet").with_columns(pl.lit("x").alias("id"))
    shifted.write_parquet(tmp_path / "reports/b/test_predictions.parquet")
    with pytest.raises(ValueError, match="different rows"):
        compare_table(tmp_path / "reports/a", tmp_path / "reports/b")
