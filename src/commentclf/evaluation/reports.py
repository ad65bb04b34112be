"""Reports of named runs (`reports/<dataset>/`): a run's metric files, the profile it ran with and its
commit, kept in the repository so that the figures quoted anywhere come from files. The README's Results
tables are generated from them (`python scripts/report.py readme`), and a test checks they agree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

REPORT_FILES = (
    "benchmark.json",
    "benchmark.md",
    "label.json",
    "student.json",
    "seed_only.json",
    "onnx.json",
    "data.json",
    "llm.json",
    "prevalence.json",
    "prevalence.md",
    "test_predictions.parquet",
)
BEGIN, END = "<!-- results:{} -->", "<!-- /results:{} -->"


def save_report(run_dir: Path, report_dir: Path, profile: str | None, wall_seconds: float | None = None) -> dict:
    """Copy a finished run's metric files into `report_dir`, with run.json: commit, profile, date (and the
    run's wall time when given)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        source = run_dir / "metrics" / name
        if source.is_file():
            shutil.copy2(source, report_dir / name)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=run_dir, capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=run_dir, capture_output=True, text=True
    )
    # what the run itself writes, and files no stage reads (the reports and the docs)
    outputs = ("dvc.lock", "params.yaml", "metrics/", "dvclive/", "plots/", "reports/", "README.md", "docs/")
    changed = [line[3:] for line in dirty.stdout.splitlines() if not line[3:].startswith(outputs)]
    run = {"commit": commit, "uncommitted_changes": changed, "profile": profile, "date": date.today().isoformat()}
    if wall_seconds is not None:
        run["wall_seconds"] = wall_seconds
    if profile:
        shutil.copy2(run_dir / "profiles" / f"{profile}.yaml", report_dir / "profile.yaml")
    # the params the run ended with: a profile plus `-S` overrides (a sweep point) are recorded exactly
    shutil.copy2(run_dir / "params.yaml", report_dir / "params.yaml")
    (report_dir / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    add_ceiling(report_dir)
    return run


def add_ceiling(report_dir: Path) -> None:
    """With a gold ceiling beside the benchmark (`scripts/ceiling.py` writes ceiling.json), put
    `ceiling_macro_f1` and `gap_recovered` = (deployed student - best seed-only) / (ceiling - best seed-only)
    at the top level of benchmark.json, and the line in benchmark.md."""
    from commentclf.evaluation.benchmark import markdown
    from commentclf.files import write_json

    bench_file, ceiling_file = report_dir / "benchmark.json", report_dir / "ceiling.json"
    if not (bench_file.is_file() and ceiling_file.is_file()):
        return
    bench, ceiling = json.loads(bench_file.read_text()), json.loads(ceiling_file.read_text())
    pairs = bench.get("comparisons", {})
    models = bench["models"]
    student = models[pairs["deployed"]]["macro_f1"]
    base = models[pairs["best_seed_only"]]["macro_f1"]
    bench["ceiling_macro_f1"] = ceiling["test"]["macro_f1"]
    bench["gap_recovered"] = (student - base) / (bench["ceiling_macro_f1"] - base)
    write_json(bench_file, bench)
    labels = list(next(iter(models.values()))["f1"])
    (report_dir / "benchmark.md").write_text(markdown(bench, labels, bench["minority_label"]), encoding="utf-8")


def results_table(report_dir: Path) -> str:
    """The README's table of one dataset, short: SetFit, the ensemble and the deployed student on the test
    split, and the student's paired differences with the first two (every model, the best seed-only baseline,
    the torch student and each ONNX scheme among them, is in the dataset's benchmark.md)."""
    from commentclf.evaluation.benchmark import paired_rows

    bench = json.loads((report_dir / "benchmark.json").read_text())
    run = json.loads((report_dir / "run.json").read_text())
    hw = bench["hardware"]
    minority = bench.get("minority_label") or next(iter(_minority_names(report_dir)), "minority")
    lines = [
        f"{bench['test_size']} test comments; {hw['cpu']}, {hw['logical_cores']} cores; commit "
        f"`{run['commit'][:7]}`, profile `{run['profile'] or 'params.yaml'}`, {run['date']}. 95 % bootstrap "
        f"intervals; p50 latency at batch 1, 1 thread, mean text {hw['text_chars']:.0f} characters.",
        "",
        f"| model | macro-F1 [95 % CI] | {minority} F1 [95 % CI] | p50 ms | size MB |",
        "|---|---|---|---|---|",
    ]
    pairs = bench.get("comparisons", {})
    deployed = bench.get("deployed")
    shown = {"setfit", "ensemble", deployed}
    for name, m in bench["models"].items():
        if name not in shown and (deployed or not name.startswith("student_onnx_")):  # older runs name none
            continue
        size = "n/a" if m["size_mb"] is None else f"{m['size_mb']:.1f}"
        lines.append(
            f"| {name} | {_with_ci(m, 'macro_f1')} | {_with_ci(m, 'minority_f1')} "
            f"| {m['latency_ms']['p50_bs1_1t']:.1f} | {size} |"
        )
    pairs = {k: v for k, v in pairs.items() if isinstance(v, dict) and k.split(" - ")[-1] in shown}
    if pairs:
        lines += ["", "| paired difference | macro-F1 [95 % CI] | " + f"{minority} F1 [95 % CI] |", "|---|---|---|"]
        lines += paired_rows(pairs)
    if bench.get("ceiling_macro_f1") is not None:
        lines += [
            "",
            f"Gold ceiling (student recipe on seed + true pool labels): {bench['ceiling_macro_f1']:.3f}; "
            f"gap recovered: {bench['gap_recovered']:.2f}.",
        ]
    if (report_dir / "prevalence.json").is_file():
        lines += ["", *trust_lines(bench, json.loads((report_dir / "prevalence.json").read_text()))]
    return "\n".join(lines)


def trust_lines(bench: dict, prevalence: dict) -> list[str]:
    """The README's lines on how many and how sure: the test split's class shares by the default method and by
    classify-and-count against the truth, the deployed model's calibration, and its conformal sets."""
    m, pct = prevalence["default_method"], lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [f"| class share % | true | {m} [95 % CI] | classify-and-count |", "|---|---|---|---|"]
    for label, c in prevalence["classes"].items():
        cc = prevalence["methods"]["cc"][label]
        lines.append(
            f"| {label} | {pct(c['true'])} | {pct(c['estimate'])} [{pct(c['low'])}, {pct(c['high'])}] | {pct(cc)} |"
        )
    deployed = bench["models"][bench["deployed"]]
    lines.append("")
    lines.append(
        f"Deployed student: ECE {deployed['ece']:.3f} (uncalibrated {deployed['ece_uncalibrated']:.3f}). "
        + _conformal_sentence(bench["conformal"])
    )
    return lines


def _conformal_sentence(c: dict) -> str:
    coverage = ", ".join(f"{label} {v:.2f}" for label, v in c["coverage"].items())
    accuracy = "n/a" if c["singleton_accuracy"] is None else f"{c['singleton_accuracy']:.2f}"
    return (
        f"Conformal sets at alpha {c['alpha']:g}: coverage {coverage}; one label for "
        f"{100 * c['singleton_share']:.0f} % of comments, accuracy {accuracy} on those."
    )


def compare_table(base_dir: Path, other_dir: Path, bootstrap: int = 1000, seed: int = 0) -> str:
    """Two saved runs on the same test set, model by model (those both benchmarked): macro-F1 and minority F1
    of each with its bootstrap interval, and the difference. When both runs kept their test predictions
    (test_predictions.parquet) the difference gets a paired bootstrap interval (the same resampled rows for
    both runs); otherwise only each run's own interval is known, and a difference inside both is not shown to
    be real."""
    from commentclf.evaluation.benchmark import paired_difference

    base, other = (json.loads((d / "benchmark.json").read_text()) for d in (base_dir, other_dir))
    if base["test_size"] != other["test_size"]:
        raise ValueError(
            f"{base_dir} and {other_dir} were tested on different sets ({base['test_size']} and "
            f"{other['test_size']} comments)"
        )
    minority = base.get("minority_label", "minority")
    a, b = base_dir.name, other_dir.name
    paired = paired_predictions(base_dir, other_dir)
    how = f"the difference's paired 95 % bootstrap ({bootstrap} resamples)" if paired else "unpaired"
    lines = [
        f"Test set: {base['test_size']} comments. Intervals: each run's 95 % bootstrap; Δ: {how}.",
        "",
        f"| model | macro-F1 {a} | macro-F1 {b} | Δ | {minority} F1 {a} | {minority} F1 {b} | Δ |",
        "|---|---|---|---|---|---|---|",
    ]

    for name, m in base["models"].items():
        if name not in other["models"]:
            continue
        n = other["models"][name]
        if paired and name in paired:
            gold, pred_a, pred_b = paired[name]
            labels = sorted(set(gold) | set(pred_a) | set(pred_b))
            d = paired_difference(gold, pred_b, pred_a, labels, minority, bootstrap, seed)
            deltas = [
                f"{d[k]:+.3f} [{d[k + '_ci'][0]:+.3f}, {d[k + '_ci'][1]:+.3f}]" for k in ("macro_f1", "minority_f1")
            ]
        else:
            deltas = [f"{n[k] - m[k]:+.3f}" for k in ("macro_f1", "minority_f1")]
        cells = [
            f"{_with_ci(m, k)} | {_with_ci(n, k)} | {delta}" for k, delta in zip(("macro_f1", "minority_f1"), deltas)
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def paired_predictions(base_dir: Path, other_dir: Path) -> dict[str, tuple[list, list, list]] | None:
    """model -> (gold, base run's predictions, other run's) on the test rows both runs scored, matched by id;
    None unless both runs kept test_predictions.parquet over the same rows with the same labels."""
    import polars as pl

    files = [d / "test_predictions.parquet" for d in (base_dir, other_dir)]
    if not all(f.is_file() for f in files):
        return None
    base, other = (pl.read_parquet(f, columns=["model", "id", "label", "predicted"]) for f in files)
    out = {}
    for name in sorted(set(base["model"]) & set(other["model"])):
        x = base.filter(pl.col("model") == name).sort("id")
        y = other.filter(pl.col("model") == name).sort("id")
        if x["id"].to_list() != y["id"].to_list() or x["label"].to_list() != y["label"].to_list():
            raise ValueError(f"{base_dir} and {other_dir}: model {name} was tested on different rows or labels")
        out[name] = (x["label"].to_list(), x["predicted"].to_list(), y["predicted"].to_list())
    return out


def _with_ci(model: dict, key: str) -> str:
    """`0.516 [0.48, 0.55]`: a benchmark figure with its interval (`key` and `key_ci`)."""
    return f"{model[key]:.3f} [{model[key + '_ci'][0]:.2f}, {model[key + '_ci'][1]:.2f}]"


def _minority_names(report_dir: Path) -> list[str]:
    md = (report_dir / "benchmark.md").read_text()
    return re.findall(r"\| (\w+) F1 \[95 % CI\]", md)


def render_readme(readme: str, reports_dir: Path) -> str:
    """The README with each `<!-- results:NAME -->` block replaced by the table of reports/NAME."""
    for report_dir in sorted(p for p in reports_dir.iterdir() if (p / "benchmark.json").is_file()):
        begin, end = BEGIN.format(report_dir.name), END.format(report_dir.name)
        if begin not in readme:
            continue
        head, rest = readme.split(begin, 1)
        _, tail = rest.split(end, 1)
        readme = f"{head}{begin}\n{results_table(report_dir)}\n{end}{tail}"
    return readme
