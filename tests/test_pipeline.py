"""The whole DVC pipeline, smoke-sized, on a throwaway copy of the repository (real models, few steps)."""

import json
import math
import sys
import time

import polars as pl
import pytest

from conftest import REPO, run_cmd

pytestmark = pytest.mark.slow  # the whole pipeline, smoke-sized: minutes

STAGES = [
    "assets",
    "split",
    "setfit",
    "synth_gen",
    "llm_finetune",
    "llm_label",
    "seed_only",
    "e5_train",
    "onnx_export",
    "suggest",
    "benchmark",
    "prevalence",
]
CALIBRATION = {f"{k}{s}" for k in ("ece", "brier", "nll") for s in ("", "_uncalibrated")}
CALIBRATION |= {"temperature", "temperature_fitted_on"}
MODELS = [
    "setfit",
    "seed_only_logreg",
    "seed_only_finetune",
    "llm",
    "ensemble",
    "student_torch",
    "student_onnx_fp32",
    "student_onnx_int8_hybrid",  # params.yaml's onnx.scheme: the deployed model
    "student_onnx_int8_blockwise",  # onnx.compare_schemes
    "student_onnx_int8_dynamic",
]
DEPLOYED = "student_onnx_int8_hybrid"
ONNX = MODELS[6:]
TEACHERS = ["logreg", "tfidf", "spread", "setfit", "llm"]  # the smoke profile runs every kind


def numbers(tree, path=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from numbers(v, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def test_every_stage_ran_and_wrote_its_outputs(smoke_repo):
    log = (smoke_repo / "repro.log").read_text()
    for stage in STAGES:
        assert f"Running stage '{stage}'" in log
    for name in ("train", "dev", "calib", "test", "pool"):
        assert (smoke_repo / "data/split" / f"{name}.parquet").is_file()
    assert (smoke_repo / "models/llm/adapter_model.safetensors").is_file()
    assert (smoke_repo / "models/student/config.json").is_file()
    assert list((smoke_repo / "models/onnx/int8").glob("*quantized.onnx"))
    # saved models do not depend on where the repository lives nor on the hash seed (DVC hashes them)
    setfit_config = list(json.loads((smoke_repo / "models/setfit/config_setfit.json").read_text()))
    assert setfit_config == sorted(setfit_config)
    assert 'from_pretrained("models/setfit")' in (smoke_repo / "models/setfit/README.md").read_text()
    pseudo = pl.read_parquet(smoke_repo / "data/pseudo.parquet")
    assert len(pseudo) == 24 and set(pseudo.columns) >= {
        "id",
        "text",
        "label",
        "confidence",
        *(f"{t}_label" for t in TEACHERS),
    }
    assert (smoke_repo / "models/seed_only/logreg/config.json").is_file()
    assert (smoke_repo / "models/seed_only/finetune/config.json").is_file()


def test_metrics_are_complete_and_finite(smoke_repo):
    names = (
        "data",
        "assets",
        "setfit",
        "synth",
        "llm",
        "label",
        "seed_only",
        "student",
        "onnx",
        "suggest",
        "benchmark",
    )
    for name in names:
        metrics = json.loads((smoke_repo / "metrics" / f"{name}.json").read_text())
        for path, value in numbers(metrics):
            assert math.isfinite(value), f"{name}.json{path} = {value}"
    llm = json.loads((smoke_repo / "metrics/llm.json").read_text())
    assert set(llm["dev"]["ms_per_comment"]) == {"generate", "score"} and "failure_rate" in llm["dev"]["parse"]
    label = json.loads((smoke_repo / "metrics/label.json").read_text())
    assert list(label["out_of_fold"]) == [*TEACHERS, "ensemble"]
    assert label["out_of_fold"]["logreg"]["n"] == label["seed_rows"]  # cross-fitted: every seed row scored
    assert label["out_of_fold"]["setfit"]["n"] < label["seed_rows"]  # trained on train: dev rows only
    # no model trains on the calib rows: the teachers see train + dev, the student train and the pseudo-labels
    split = json.loads((smoke_repo / "metrics/data.json").read_text())["split"]
    assert label["seed_rows"] == split["train"]["rows"] + split["dev"]["rows"] and split["calib"]["rows"] > 0
    student = json.loads((smoke_repo / "metrics/student.json").read_text())
    assert student["rows"]["train"] == split["train"]["rows"]
    # the recipe is chosen by replaying the distillation on train + dev alone, and the student follows it
    recipe = label["recipe"]
    assert recipe["mode"] == "auto" and sum(recipe["rows"].values()) == label["seed_rows"]
    assert recipe["chosen"] == json.loads((smoke_repo / "data/recipe.json").read_text()) == student["recipe"]
    best = max(c["macro_f1"] for c in recipe["candidates"])
    assert [c["macro_f1"] for c in recipe["candidates"] if c | recipe["chosen"] == c][0] == best
    # every seed row the teachers cross-fit on has its out-of-fold probabilities (what suggest.review ranks)
    oof = pl.read_parquet(smoke_repo / "data/seed_oof.parquet")
    assert len(oof) == label["seed_rows"] and oof["split"].value_counts().sort("split")["count"].to_list() == [
        split["dev"]["rows"],
        split["train"]["rows"],
    ]
    sums = oof.select(pl.sum_horizontal(pl.col("^proba_.*$")))
    assert oof.select(pl.col("^proba_.*$")).width == 3 and ((sums.to_series() - 1).abs() < 1e-6).all()
    assert abs(sum(label["weights"].values()) - 1) < 1e-6 and set(label["weights"]) == set(TEACHERS)
    gold = label["pseudo_label_accuracy"]  # label.gold set by the smoke profile
    assert gold["rows_matched"] == 0 and set(gold["all_rows"]) == {"ensemble", *TEACHERS}
    synth = json.loads((smoke_repo / "metrics/synth.json").read_text())
    assert synth["generated"] == synth["kept"] + sum(synth["rejected"].values())
    onnx = json.loads((smoke_repo / "metrics/onnx.json").read_text())
    assert onnx["fp32_vs_torch"]["argmax_agreement"] == 1.0
    assert {k: v["folder"] for k, v in onnx["schemes"].items()} == {
        "hybrid": "int8",
        "blockwise": "int8_blockwise",
        "dynamic": "int8_dynamic",
    }
    assert onnx["schemes"]["hybrid"]["deployed"] and onnx["int8_vs_torch"] == onnx["schemes"]["hybrid"]["vs_torch"]
    # the gate reads pool rows held out of the trimming corpus; dev and test are reported beside it
    assert onnx["parity_rows"]["pool (held out of the trimming corpus; gated)"] == onnx["fp32_vs_torch"]["rows"] > 0
    assert onnx["parity_rows"]["test (reported)"] > 0
    # a trim is kept only where the held-out rows agree; otherwise the refused trim's figures are reported
    assert onnx["trimmed"] == ("vocab" in onnx) and onnx["trimmed"] != ("trim_refused" in onnx)
    assert set(onnx["calibration"]) == {"fp32", "hybrid", "blockwise", "dynamic"}
    assert all(c["calib_nll_calibrated"] <= c["calib_nll"] + 1e-3 for c in onnx["calibration"].values())
    assert all(0 <= v["vs_torch"]["test_argmax_agreement"] <= 1 for v in onnx["schemes"].values())


def test_suggestions_and_their_import(smoke_repo, tmp_path):
    """`suggest` offers pool comments only (never a train, dev or test text) as Label Studio tasks carrying the
    ensemble's guess; the filled-in CSV comes back through `commentclf annotations import`, idempotently."""
    import xml.etree.ElementTree as ET

    import yaml

    annotation = smoke_repo / "annotation"
    tasks = json.loads((annotation / "tasks.json").read_text())
    report = json.loads((smoke_repo / "metrics/suggest.json").read_text())
    assert len(tasks) == report["suggested"] == min(100, report["candidates"]) > 0
    labelled = {
        t
        for name in ("train", "dev", "calib", "test")
        for t in pl.read_parquet(smoke_repo / f"data/split/{name}.parquet")["text"]
    }
    pool = set(pl.read_parquet(smoke_repo / "data/split/pool.parquet")["text"])
    texts = [t["data"]["text"] for t in tasks]
    assert len(set(texts)) == len(texts) and set(texts) <= pool and not set(texts) & labelled
    choices = [c.get("value") for c in ET.fromstring((annotation / "label_config.xml").read_text()).iter("Choice")]
    assert choices == ["pro_ukraine", "pro_russia", "off_topic"]
    for task in tasks:
        (prediction,) = task["predictions"]
        assert prediction["result"][0]["value"]["choices"][0] in choices and 0 < prediction["score"] <= 1
        assert prediction["model_version"] == report["model_version"]
    # what the next labels are worth: the proxy's learning curve over train + dev, with an interval per batch
    worth = report["forecast"]
    assert worth["labelled"] == sum(
        pl.read_parquet(smoke_repo / f"data/split/{n}.parquet").height for n in ("train", "dev")
    )
    for metric in ("macro_f1", "minority_f1"):
        assert set(worth[metric]) == {"100", "300"}
        assert all(g["low"] <= g["gain"] <= g["high"] for g in worth[metric].values())
    # an annotator fills the CSV: the first three get a label, one of them conflicting with nothing
    csv = pl.read_csv(annotation / "tasks.csv")
    filled = csv.with_columns(pl.Series("label", ["pro_russia", "off_topic", "pro_ukraine"] + [None] * (len(csv) - 3)))
    filled.write_csv(tmp_path / "filled.csv")
    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    (tmp_path / "labeled.csv").write_bytes((smoke_repo / params["data"]["labeled"]).read_bytes())
    params["data"]["labeled"] = str(tmp_path / "labeled.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = pl.read_csv(tmp_path / "labeled.csv")
    cmd = [
        "commentclf",
        "annotations",
        "import",
        str(tmp_path / "filled.csv"),
        "--params",
        str(tmp_path / "params.yaml"),
    ]
    first = " ".join(run_cmd(cmd, smoke_repo).stdout.split())
    assert "added │ 3" in first and f"skipped or cancelled │ {len(csv) - 3}" in first, first
    after = pl.read_csv(tmp_path / "labeled.csv")
    assert len(after) == len(before) + 3 and after["text"].to_list()[-3:] == csv["text"].to_list()[:3]
    second = " ".join(run_cmd(cmd, smoke_repo).stdout.split())
    assert "added │ 0" in second and "already labelled, same label │ 3" in second, second
    assert pl.read_csv(tmp_path / "labeled.csv").equals(after)

    # review: the labelled rows the teachers doubt most, from train and dev only (calib stays out of every model)
    review = pl.read_csv(annotation / "review.csv")
    seen = {t for name in ("train", "dev") for t in pl.read_parquet(smoke_repo / f"data/split/{name}.parquet")["text"]}
    assert 0 < len(review) == report["review"]["offered"] <= 45 and set(review["text"]) <= seen
    assert review["label_quality"].is_sorted() and (review["label"] == review["given_label"]).all()
    fixed = next(x for x in choices if x != review["given_label"][0])
    review.with_columns(pl.Series("label", [fixed, *review["label"][1:]])).write_csv(tmp_path / "review.csv")
    cmd[3] = str(tmp_path / "review.csv")
    kept_out = " ".join(run_cmd(cmd, smoke_repo).stdout.split())
    assert "corrections applied │ 0" in kept_out and "--accept-corrections) │ 1" in kept_out, kept_out
    applied = " ".join(run_cmd([*cmd, "--accept-corrections"], smoke_repo).stdout.split())
    assert "corrections applied │ 1" in applied, applied
    row = pl.read_csv(tmp_path / "labeled.csv").filter(pl.col("text") == review["text"][0])
    assert row.select("label", "label_history").rows() == [(fixed, review["given_label"][0])]


def test_the_parity_gate_fails_the_stage_with_the_measured_agreement(smoke_repo, tmp_path):
    """Each scheme passes the int8 agreement bound or stops the stage saying what it measured; a bound of
    100 % on the barely trained smoke student exercises whichever happens."""
    import yaml

    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    params["onnx"] |= {"scheme": "dynamic", "compare_schemes": ["hybrid", "blockwise"], "min_int8_agreement": 1.0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "stages/onnx_export.py", "--params", str(tmp_path / "params.yaml"), "--split-dir"]
    cmd += ["data/split", "--student-dir", "models/student", "--out-dir", str(tmp_path / "onnx")]
    proc = run_cmd([*cmd, "--metrics", str(tmp_path / "onnx.json")], smoke_repo, check=False)
    report = json.loads((tmp_path / "onnx.json").read_text())  # written before the gate, in both cases
    agreement = report["schemes"]["dynamic"]["vs_torch"]["argmax_agreement"]
    assert [report["schemes"][x]["passes_gate"] for x in ("dynamic", "hybrid", "blockwise")] == [
        report["schemes"][x]["vs_torch"]["argmax_agreement"] == 1.0 for x in ("dynamic", "hybrid", "blockwise")
    ]
    if agreement == 1.0:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        message = " ".join(proc.stderr.split())
        assert f"int8 (dynamic) ONNX agrees with torch on {agreement:.2%}" in message, message
        assert "below onnx.min_int8_agreement=100%" in message


def test_benchmark_json_has_the_agreed_shape(smoke_repo):
    report = json.loads((smoke_repo / "metrics/benchmark.json").read_text())
    keys = {"test_size", "minority_label", "deployed", "hardware", "models", "comparisons", "conformal"}
    onnx = json.loads((smoke_repo / "metrics/onnx.json").read_text())
    assert set(report) == keys | ({"vocab_coverage"} if onnx["trimmed"] else set()) and report["deployed"] == DEPLOYED
    assert report["test_size"] == 44
    if onnx["trimmed"]:  # onnx.trim_vocab kept: the deployed tokenizer is the trimmed one, and it says so
        assert 0 < report["vocab_coverage"]["token_coverage"] <= 1 and report["vocab_coverage"]["texts"] == 44
        assert onnx["vocab"]["vocab_after"] < onnx["vocab"]["vocab_before"] // 10
    conformal = report["conformal"]  # the deployed model's sets on test, calibrated on dev by onnx_export
    assert conformal["alpha"] == 0.4 and conformal["rows"] == 44 and conformal["calibration_rows"] > 0
    assert set(conformal["coverage"]) == {"pro_ukraine", "pro_russia", "off_topic"}
    assert all(0 <= v <= 1 for v in conformal["coverage"].values()) and 0 <= conformal["mean_set_size"] <= 3
    assert list(report["models"]) == MODELS
    for name, m in report["models"].items():
        onnx_only = {"agreement_with_torch", "serve"} if name in ONNX else set()
        assert set(m) == onnx_only | {
            "accuracy",
            "macro_f1",
            "macro_f1_ci",
            "minority_f1",
            "minority_f1_ci",
            "f1",
            "precision",
            "recall",
            "latency_ms",
            "throughput_per_s",
            "size_mb",
            *(CALIBRATION - ({"temperature"} if name == "ensemble" else set())),
        }
        assert set(m["latency_ms"]) == {"p50_bs1_1t", "p95_bs1_1t", "p50_bs1", "p95_bs1"}
        assert 0 <= m["ece"] <= 1 and 0 <= m["ece_uncalibrated"] <= 1
        # the ONNX students and the ensemble ship their calibration: reported as it is, never refitted
        assert ("shipped" in m["temperature_fitted_on"]) == (name in [*ONNX, "ensemble"])
        assert ("temperature" in m) == (name != "ensemble") and m.get("temperature", 1) > 0
        curve = json.loads((smoke_repo / "dvclive/benchmark/plots/reliability" / f"{name}.json").read_text())
        assert sum(row["rows"] for row in curve) == 44 and set(curve[0]) == {"confidence", "accuracy", "rows"}
        assert m["macro_f1_ci"][0] <= m["macro_f1"] <= m["macro_f1_ci"][1] + 1e-9
    for name in ONNX:  # `commentclf serve` started on every scheme's folder and answered
        serve = report["models"][name]["serve"]
        assert serve["startup_s"] > 0 and 0 < serve["rss_mb"] <= serve["peak_rss_mb"], serve
        assert 0 <= report["models"][name]["agreement_with_torch"] <= 1
    table = (smoke_repo / "metrics/benchmark.md").read_text()
    assert all(f"| {name} |" in table for name in MODELS) and "serve start s" in table and "| ECE |" in table
    deployed_folder = json.loads((smoke_repo / "models/onnx/int8/calibration.json").read_text())
    assert deployed_folder["temperature"] == report["models"][DEPLOYED]["temperature"]
    pairs = report["comparisons"]
    assert pairs["deployed"] == DEPLOYED and pairs["best_seed_only"] in MODELS[:3]
    for d in (pairs[f"{DEPLOYED} - setfit"], pairs[f"{DEPLOYED} - {pairs['best_seed_only']}"]):
        assert d["macro_f1_ci"][0] <= d["macro_f1"] <= d["macro_f1_ci"][1]
    for model in MODELS:  # DVCLive's confusion-matrix data: one (actual, predicted) row per test comment
        rows = json.loads((smoke_repo / "dvclive/benchmark/plots/sklearn" / f"{model}.json").read_text())
        assert len(rows) == 44 and set(rows[0]) == {"actual", "predicted"}
    ensemble = json.loads((smoke_repo / "models/ensemble.json").read_text())
    assert set(ensemble) == {"labels", "teachers", "weights", "calibration", "prior_bias"}
    # every model's test probabilities are kept (ids, no text), so two runs can be compared row by row
    kept = pl.read_parquet(smoke_repo / "metrics/test_predictions.parquet")
    assert "text" not in kept.columns and kept.height == 44 * len(report["models"])
    for name, m in report["models"].items():
        mine = kept.filter(pl.col("model") == name)
        assert (
            mine["id"].n_unique() == 44
            and abs(float((mine["predicted"] == mine["label"]).mean()) - m["accuracy"]) < 1e-9
        )


def test_prevalence_json_scores_every_method_against_the_test_truth(smoke_repo):
    report = json.loads((smoke_repo / "metrics/prevalence.json").read_text())
    labels = ["pro_ukraine", "pro_russia", "off_topic"]
    methods = {"cc", "pcc", "acc", "pacc", "emq"}
    # prevalence.method: auto -- chosen on shifted samples of the dev rows; test and pool play no part
    assert report["default_method"] == report["choice"]["method"] in methods
    assert set(report["choice"]["errors"]) == methods and report["test_rows"] == 44
    test = pl.read_parquet(smoke_repo / "data/split/test.parquet")
    for label in labels:
        c = report["classes"][label]
        assert c["true"] == pytest.approx((test["label"] == label).mean())
        assert 0 <= c["low"] <= c["high"] <= 1 and 0 <= c["estimate"] <= 1
    assert set(report["methods"]) == methods and all(set(m) == set(labels) for m in report["methods"].values())
    assert all(abs(sum(m.values()) - 1) < 1e-6 for m in report["methods"].values())
    assert report["pool"]["rows"] == len(pl.read_parquet(smoke_repo / "data/split/pool.parquet"))
    assert set(report["adjust_prior"]) == {"argmax", "emq_posteriors", "reweighted"}
    assert all("ece" in r and "macro_f1" in r for r in report["adjust_prior"].values())
    assert report["adjust_prior"]["reweighted"]["prior_from"] == report["default_method"]
    table = (smoke_repo / "metrics/prevalence.md").read_text()
    assert all(f"| {label} |" in table for label in labels) and "largest error" in table


def test_rerun_is_a_noop_and_a_param_reruns_only_its_stage(smoke_repo):
    again = run_cmd(["dvc", "repro"], smoke_repo)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout
    params = smoke_repo / "params.yaml"
    params.write_text(params.read_text().replace("bootstrap: 100", "bootstrap: 101"))
    out = run_cmd(["dvc", "repro"], smoke_repo)
    ran = [stage for stage in STAGES if f"Running stage '{stage}'" in out.stdout]
    assert ran == ["benchmark"], out.stdout
    # a library module reruns exactly the stages that import it (dvc.yaml lists each stage's code)
    module = smoke_repo / "src/commentclf/evaluation/benchmark.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    out = run_cmd(["dvc", "repro"], smoke_repo)
    ran = [stage for stage in STAGES if f"Running stage '{stage}'" in out.stdout]
    assert ran == ["benchmark"], out.stdout


def test_dvc_metrics_and_plots_commands(smoke_repo):
    shown = run_cmd(["dvc", "metrics", "show", "--md"], smoke_repo)
    assert "metrics/benchmark.json" in shown.stdout
    diff = run_cmd(["dvc", "metrics", "diff", "--md"], smoke_repo)  # against the committed (demo) metrics
    assert diff.returncode == 0
    plots = json.loads(run_cmd(["dvc", "plots", "show", "--json"], smoke_repo).stdout)
    shown = " ".join(plots["data"])
    for curve in ("dvclive/setfit/plots/metrics", "dvclive/llm/plots/metrics", "dvclive/student/plots/metrics"):
        assert curve in shown, shown
    assert f"dvclive/benchmark/plots/sklearn/{DEPLOYED}.json" in shown, shown


def test_stage_reports_bad_data_without_traceback(smoke_repo, tmp_path):
    params = (smoke_repo / "params.yaml").read_text().replace("data/demo/unlabeled.csv", str(tmp_path / "missing.csv"))
    (tmp_path / "params.yaml").write_text(params)
    proc = run_cmd(
        [
            sys.executable,
            "stages/split.py",
            "--params",
            str(tmp_path / "params.yaml"),
            "--out-dir",
            str(tmp_path / "split"),
            "--metrics",
            str(tmp_path / "data.json"),
        ],
        smoke_repo,
        check=False,
    )
    assert proc.returncode == 1
    assert f"error: {tmp_path / 'missing.csv'}: file not found" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def test_cli_check_validates_params_and_data(smoke_repo, tmp_path):
    ok = run_cmd(["commentclf", "check"], smoke_repo)
    assert "params and data are valid" in ok.stdout
    (tmp_path / "params.yaml").write_text((smoke_repo / "params.yaml").read_text() + "\nsplitt: {}\n")
    bad = run_cmd(["commentclf", "check", "--params", str(tmp_path / "params.yaml")], smoke_repo, check=False)
    assert bad.returncode == 1 and "splitt: unknown key" in bad.stderr


def test_two_point_sweep_with_dvc_exp(smoke_repo):
    """`dvc exp run --queue -S a,b` sweeps a leaf param; only the stages downstream of it run (the rest
    comes from the run-cache), and both experiments get their metrics."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    run_cmd(git + ["add", "-A"], smoke_repo)
    run_cmd(git + ["commit", "-qm", "smoke baseline"], smoke_repo)
    # generative is the baseline's value (every stage from the run-cache); classifier reruns the LLM and
    # everything downstream of it, so the classifier head runs in the smoke pipeline as a teacher too
    run_cmd(["dvc", "exp", "run", "--queue", "-S", "llm.head=generative,classifier"], smoke_repo)
    run_cmd(["dvc", "queue", "start", "-j", "1"], smoke_repo)
    deadline = time.time() + 1200
    while time.time() < deadline:
        status = run_cmd(["dvc", "queue", "status"], smoke_repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 2, status
    shown = json.loads(run_cmd(["dvc", "exp", "show", "--json"], smoke_repo).stdout)
    exps = [rev for commit in shown for exp in commit.get("experiments") or [] for rev in exp["revs"]]
    heads = sorted(e["data"]["params"]["params.yaml"]["data"]["llm"]["head"] for e in exps)
    assert heads == ["classifier", "generative"]
    for e in exps:
        metrics = e["data"]["metrics"]
        assert metrics["metrics/llm.json"]["data"]["head"] == e["data"]["params"]["params.yaml"]["data"]["llm"]["head"]
        bench = metrics["metrics/benchmark.json"]["data"]
        assert math.isfinite(bench["models"][DEPLOYED]["macro_f1"])
        assert math.isfinite(bench["models"]["llm"]["macro_f1"])


def test_profile_experiment_command(smoke_repo):
    """`commentclf exp --profile smoke` (what `make exp PROFILE=smoke` runs) on a repo already at smoke
    settings: the overrides change nothing, so every stage comes from the cache."""
    import yaml

    from commentclf.profiles import load_profile, merge

    profile = REPO / "profiles/smoke.yaml"
    # Earlier tests may have changed benchmark.bootstrap; the profile sets it back, so the expected params
    # are the current ones with the profile merged in, and at most the benchmark reruns.
    expected = merge(yaml.safe_load((smoke_repo / "params.yaml").read_text()), load_profile(profile))
    out = run_cmd(["commentclf", "exp", "--profile", str(profile)], smoke_repo)
    assert "setfit.max_steps=4" in out.stdout.replace("\n", "")
    ran = [stage for stage in STAGES if f"Running stage '{stage}'" in out.stdout]
    assert ran in ([], ["benchmark"]), ran
    assert yaml.safe_load((smoke_repo / "params.yaml").read_text()) == expected
    bad = run_cmd(["commentclf", "exp", "--profile", "nope"], smoke_repo, check=False)
    assert bad.returncode == 1 and "profile not found" in bad.stderr
