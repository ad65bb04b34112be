"""The `commentclf` command, the user's front door: `check` a configuration and its data, run the pipeline
(`repro`, `exp --profile`: DVC runs the stages in `stages/` and caches them), `predict` with the deployed
ONNX student (one text, or a file of any size, locally or on Ray), `serve` it over HTTP, and bring labelled
suggestions back (`annotations import`).
"""

# Above every phase of the library (pyproject.toml's layers contract); no stage imports it, so editing it
# reruns nothing.

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from commentclf.config import load_params
from commentclf.data import build_splits
from commentclf.errors import DataError, ParamsError
from commentclf.inference.serve import serve
from commentclf.stage import user_errors_exit

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


def _cap_malloc_arenas(arenas: int) -> None:
    """Let this process's threads share `arenas` glibc malloc arenas. By default each thread that allocates gets
    its own (up to 8 per core), and what a worker frees stays in its arena: with two workers, the peak of a
    streamed run kept growing over its first few hundred thousand rows (docs/scale.md). No-op off glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    M_ARENA_MAX = -8  # malloc.h; read when a thread first needs an arena, so set it before the workers start
    mallopt(M_ARENA_MAX, arenas)


@app.command()
@user_errors_exit
def check(params: Path = typer.Option(Path("params.yaml"), help="params file to validate")) -> None:
    """Validate params.yaml and the data files it names, without writing anything."""
    cfg = load_params(params)
    result = build_splits(cfg.data, cfg.split, cfg.label_names)
    report = result.metrics(cfg.label_names)
    table = Table("file", "read", "empty", "truncated", "duplicates", "conflicts", "overlap", "kept")
    for name in ("labeled", "test", "pool"):
        if name in report:
            r = report[name]
            table.add_row(
                name,
                *(
                    str(r[k])
                    for k in (
                        "rows_read",
                        "empty",
                        "truncated",
                        "duplicates",
                        "conflicting_labels",
                        "overlap_removed",
                        "kept",
                    )
                ),
            )
    console.print(table)
    console.print({name: counts for name, counts in report["split"].items()})
    console.print("[green]params and data are valid[/]")


@app.command()
@user_errors_exit
def exp(
    profile: str = typer.Option(..., help="profile name (profiles/NAME.yaml) or path"),
    mode: str = typer.Option(
        "workspace",
        help="workspace: run here (params.yaml gets the overrides, like any `dvc exp run -S`); "
        "temp / queue: in a temporary copy (only for profiles whose data paths lie inside the repository)",
    ),
    extra: list[str] = typer.Argument(None, help="more `dvc exp run` arguments, after --"),
) -> None:
    """Run the pipeline as a DVC experiment with a profile's overrides (`dvc exp run -S ...`)."""
    from commentclf.profiles import apply_profile, load_profile, set_param_args

    if mode not in ("workspace", "temp", "queue"):
        raise ParamsError(f"--mode must be workspace, temp or queue, not {mode!r}")
    apply_profile(profile)  # fail here, with the bad key named, rather than inside a stage
    flags = [] if mode == "workspace" else [f"--{mode}"]
    cmd = [sys.executable, "-m", "dvc", "exp", "run", *flags, *set_param_args(load_profile(profile)), *(extra or [])]
    # Verbatim, so that it can be copied: rich markup would read `[negative, neutral]` as a style tag.
    print(shlex.join(cmd[1:]), flush=True)
    raise typer.Exit(subprocess.call(cmd))


def _load_student(model: Path, params: Path, workers: int | None):
    """The deployed ONNX student, making `workers` model calls at once (None: one per CPU this process may use)."""
    from commentclf.student.onnx_model import OnnxClassifier

    cfg = load_params(params)
    if not model.is_dir():
        raise DataError(f"{model}: no ONNX student here; run `dvc repro onnx_export` first")
    if workers is None:
        # one text is too small a job for two threads; two texts are not. The CPUs this process may use (Linux),
        # else all of them (sched_getaffinity is Linux-only)
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers > 1:
        _cap_malloc_arenas(2)
    return OnnxClassifier(model, max_length=cfg.student.max_length, prefix=cfg.student.prefix, workers=workers)


@app.command()
@user_errors_exit
def predict(
    text: str = typer.Argument(None, help="a comment to classify"),
    input: Path = typer.Option(None, "--input", help="CSV or parquet file to label (any size: read in batches)"),
    output: Path = typer.Option(
        None, "--output", help="a folder of parquet parts + manifest, or one .csv / .parquet file"
    ),
    text_column: str = typer.Option("text", help="text column of --input"),
    id_column: str = typer.Option("id", help="id column of --input; the row number where there is none"),
    model: Path = typer.Option(Path("models/onnx/int8"), help="ONNX student folder"),
    params: Path = typer.Option(Path("params.yaml"), help="for the student's prefix and max_length"),
    batch_size: int = typer.Option(
        1, min=1, help="texts per model call; above 1, an int8 model's answer depends on the batch-mates"
    ),
    part_rows: int = typer.Option(10_000, min=1, help="input rows per output part (the unit of resuming)"),
    engine: str = typer.Option("local", help="local: this process, streaming | ray: Ray Data (the `ray` extra)"),
    address: str = typer.Option(None, help="ray: a running cluster's address (default: RAY_ADDRESS, else a local Ray)"),
    num_cpus: int = typer.Option(None, min=1, help="ray: CPUs of the local Ray started for the run (default: all)"),
    actors: int = typer.Option(
        None,
        min=1,
        help="ray: model replicas (actors), each loading the student once (default: one per --threads CPUs)",
    ),
    threads: int = typer.Option(1, min=1, help="ray: CPUs per actor, each making one model call at a time"),
    workers: int = typer.Option(
        None, min=1, help="local: model calls at once, one onnxruntime thread each (default: one per CPU)"
    ),
    alpha: float = typer.Option(
        0.1, min=0.0, max=1.0, help="the conformal set beside each label holds the true one 1-alpha of the time"
    ),
    abstain: bool = typer.Option(False, help="leave the label empty where the set is not a single class"),
) -> None:
    """Label one text, or a file with the ONNX student. A file is streamed in constant memory into parquet
    parts; rerun the same command after a crash and it goes on from the last finished part. `--engine ray`
    labels the file on Ray Data (a local Ray, or the cluster at --address) into the same output."""
    import shutil

    from rich.progress import Progress

    from commentclf.conformal import set_labels, set_names
    from commentclf.inference.streaming import SetOptions, export_output, predict_file

    if (text is None) == (input is None):
        raise DataError("give either a TEXT argument or --input FILE (with --output)")
    if engine not in ("local", "ray"):
        raise DataError(f"--engine must be local or ray (got {engine!r})")
    if engine == "ray":
        from commentclf.inference.ray_predict import predict_file_ray
        from commentclf.ray_engine import RayOptions, import_ray

        import_ray()  # before loading anything: a missing extra is the first thing to say
    # one text, or the driver's copy of the model on Ray (its hash names the output): one call at a time
    clf = _load_student(model, params, 1 if input is None or engine == "ray" else workers)
    sets = SetOptions(alpha, abstain)
    if text is not None:
        if not text.strip():
            raise DataError("the text is empty")
        p = clf.predict_proba([text])
        chosen = clf.prediction_sets(p, alpha)
        label = set_labels(p, chosen, clf.labels, abstain)[0] or "(abstained)"
        console.print(
            f"[bold]{label}[/]  "
            + "  ".join(f"{name}={x:.3f}" for name, x in zip(clf.labels, p[0]))
            + f"  set@{alpha:g}={{{set_names(chosen, clf.labels)[0].replace('|', ', ')}}}",
            highlight=False,
        )
        return
    if output is None:
        raise DataError("--input needs --output")
    one_file = output.suffix.lower() in (".csv", ".parquet")
    parts_dir = output.with_name(output.name + ".parts") if one_file else output
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"labelling {input}", total=None)

        def advance(part: dict, total: int) -> None:
            progress.update(task, total=total, completed=part["first_row"] + part["rows"])

        if engine == "ray":
            opts = RayOptions(address=address, num_cpus=num_cpus, actors=actors, threads=threads)
            manifest = predict_file_ray(
                clf, model, input, parts_dir, opts, text_column, id_column, part_rows, batch_size, advance, sets
            )
        else:
            manifest = predict_file(
                clf, input, parts_dir, text_column, id_column, part_rows, batch_size, advance, sets=sets
            )
    if one_file:
        export_output(parts_dir, output)
        shutil.rmtree(parts_dir)
    console.print(
        f"wrote {output}: {manifest['rows']} rows in {len(manifest['parts'])} parts "
        f"({manifest['unlabelled'] - manifest['abstained']} empty texts left unlabelled"
        + (f", {manifest['abstained']} abstained: set not a single class at alpha {alpha:g})" if abstain else ")")
    )


@app.command()
@user_errors_exit
def prevalence(
    input: Path = typer.Option(..., "--input", help="CSV or parquet file of comments (any size: read in batches)"),
    output: Path = typer.Option(
        ..., "--output", help="folder: prevalence.json, prevalence.md and the scored parts (the unit of resuming)"
    ),
    by: str = typer.Option(None, "--by", help="a column of --input: shares per group (an article id, a month)"),
    heldout: Path = typer.Option(
        Path("data/split/calib.parquet"),
        help="labelled rows no model trained on (columns text, label): the adjusted methods' error rates",
    ),
    method: str = typer.Option(
        None,
        help="the answer's method: auto (chosen on shifted samples of --heldout), cc, pcc, acc, pacc or emq (all "
        "are reported); default: params.yaml's prevalence.method",
    ),
    bootstrap: int = typer.Option(None, min=10, help="bootstrap draws of the 95 % intervals (default: params.yaml)"),
    adjust_prior: bool = typer.Option(
        False, help="also write adjusted.parquet: each row's scores re-weighted to the answer's estimated shares"
    ),
    min_group_rows: int = typer.Option(20, min=1, help="--by: a smaller group gets its counts, not a share"),
    text_column: str = typer.Option("text", help="text column of --input"),
    id_column: str = typer.Option("id", help="id column of --input; the row number where there is none"),
    model: Path = typer.Option(Path("models/onnx/int8"), help="ONNX student folder"),
    params: Path = typer.Option(Path("params.yaml"), help="for the student's prefix and max_length, and the seed"),
    part_rows: int = typer.Option(10_000, min=1, help="input rows per scored part"),
    workers: int = typer.Option(None, min=1, help="model calls at once (default: one per CPU)"),
) -> None:
    """Estimate how much of a file each class is, with 95 % intervals, overall and per --by group. Counting the
    model's labels is biased when its errors differ across classes or the file's class mix is not the seed's;
    the adjusted methods correct the counts with the model's error rates on --heldout rows. Rerun the same
    command after a crash: it goes on from the last scored part."""
    from rich.progress import Progress

    from commentclf.files import write_json
    from commentclf.inference.prevalence import PrevalenceOptions, markdown, prevalence_of_file, read_heldout

    clf = _load_student(model, params, workers)
    cfg = load_params(params)
    opts = PrevalenceOptions(
        method=method or cfg.prevalence.method,
        by=by,
        bootstrap=bootstrap or cfg.prevalence.bootstrap,
        folds=cfg.prevalence.folds,
        protocol_samples=cfg.prevalence.protocol_samples,
        adjust_prior=adjust_prior,
        min_group_rows=min_group_rows,
        seed=cfg.seed,
        text_column=text_column,
        id_column=id_column,
        part_rows=part_rows,
    )
    held = read_heldout(clf, heldout, cfg.prevalence.recalibrate == "bcts")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"scoring {input}", total=None)
        report = prevalence_of_file(
            clf,
            input,
            held,
            output,
            opts,
            lambda part, total: progress.update(task, total=total, completed=part["first_row"] + part["rows"]),
        )
    write_json(output / "prevalence.json", report)
    (output / "prevalence.md").write_text(markdown(report), encoding="utf-8")
    console.print(markdown(report), markup=False)


annotations = typer.Typer(no_args_is_help=True, help="The annotation loop: bring labelled suggestions back.")
app.add_typer(annotations, name="annotations")


@annotations.command("import")
@user_errors_exit
def import_annotations(
    file: Path = typer.Argument(
        ..., help="Label Studio JSON export, or annotation/tasks.csv (or review.csv) with `label` filled"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="names the labelled file (data.labeled) and the pool"),
    accept_corrections: bool = typer.Option(
        False, help="apply answers that change a labelled row's label (the old one goes to label_history)"
    ),
) -> None:
    """Merge annotators' answers into the labelled file; then `dvc repro` retrains what depends on it."""
    from commentclf.annotation.label_studio import merge_answers, read_answers
    from commentclf.data import read_table

    cfg = load_params(params)
    d = cfg.data
    pool = read_table(d.unlabeled)
    if d.text_column not in pool.columns:
        raise DataError(f"{d.unlabeled}: missing column {d.text_column!r} (columns found: {pool.columns})")
    answers, skipped = read_answers(Path(file))
    report = merge_answers(
        answers,
        skipped,
        Path(d.labeled),
        pool[d.text_column].to_list(),
        cfg.label_names,
        d.text_column,
        d.label_column,
        accept_corrections,
    )
    table = Table(title=f"{file} -> {d.labeled}")
    table.add_column("answers")
    table.add_column("count", justify="right")
    for name, count in (
        ("added", report.added),
        ("already labelled, same label", report.already_same),
        ("corrections applied", report.corrected),
        ("corrections kept out (apply with --accept-corrections)", len(report.corrections) - report.corrected),
        ("skipped or cancelled", report.skipped),
        ("not from the pool (kept out)", len(report.not_from_pool)),
        ("unknown label (kept out)", len(report.unknown_label)),
    ):
        table.add_row(name, str(count))
    console.print(table)
    for row in report.corrections:
        console.print(f"correction: {row['text'][:80]!r} was {row['labelled']}, the answer says {row['answer']}")
    for row in report.unknown_label:
        console.print(f"unknown label {row['label']!r} (labels: {', '.join(cfg.label_names)}): {row['text'][:80]!r}")
    for text in report.not_from_pool:
        console.print(f"not in {d.unlabeled}: {text[:80]!r}")


# The same function `python -m commentclf.inference.serve` runs (the benchmark starts it that way).
app.command("serve")(user_errors_exit(serve))


@app.command()
def repro(stage: list[str] = typer.Argument(None, help="stage names; all stages when omitted")) -> None:
    """Run the pipeline (`dvc repro`), rebuilding only what changed."""
    raise typer.Exit(subprocess.call([sys.executable, "-m", "dvc", "repro", *(stage or [])]))


if __name__ == "__main__":
    app()
