"""Label a file on Ray Data (`commentclf predict --engine ray`): the same rows, ids, labels and output layout
as the local engine (commentclf.streaming), with the model on a pool of actors that may span a cluster.
`score_rows_ray` does the same for llm_label's row scoring (`label.engine: ray`, commentclf.scoring).

The driver stages the input as parquet files of `part_rows` rows carrying their row number (read part by
part with `data.table_batches`, as the local engine reads it: cheap beside the model), Ray reads them
(`ray.data.read_parquet`), an actor pool labels batches with the local engine's own `label_part` (each
actor loads the ONNX student once) and Ray's parquet writer writes the results. The driver then checks
that the written rows are the input's rows, each exactly once, and files them as the output's parts in input
order, under the same manifest as the local engine.

Ray restarts an actor whose process died and retries its task; its output files are named by task, so a
retried task overwrites its file rather than adding one (and the row check would catch a duplicate). A run
that fails anyway leaves its manifest: the same command starts it again, never mixing two runs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from commentclf.data import table_rows
from commentclf.errors import DataError, EngineError
from commentclf.streaming import (
    add_part,
    finish_output,
    input_parts,
    label_part,
    open_output,
    part_name,
    write_manifest,
)

ORDER = "__order"  # the input row number, carried through Ray so the driver can check and order the rows
STAGED, WRITTEN = "_ray_input", "_ray_output"
IO_CPUS = 0.1


@dataclass
class RayOptions:
    address: str | None = None
    """A running cluster (`ray start --head` prints it); None attaches to RAY_ADDRESS, else starts a local Ray."""
    num_cpus: int | None = None
    """CPUs of the local Ray started for the run (None: all); ignored when attaching to a cluster."""
    actors: int | None = None
    """Model replicas: actors that each load the student once and label batches. None: as many as the CPUs
    hold at `threads` each (a local Ray's `num_cpus`; a cluster's CPUs less the one Ray Data's listing needs)."""
    threads: int = 1
    """onnxruntime threads (and Ray CPUs reserved) per actor."""


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is in the extra, not in every ray install)
    except ImportError:
        raise EngineError("the Ray engine needs the `ray` extra: pip install -e '.[ray]'") from None
    return ray


class Labeller:
    """One actor: the ONNX student, loaded once, labelling Arrow batches with the local engine's code."""

    def __init__(self, model_dir: str, max_length: int, prefix: str, threads: int, columns: tuple, batch_size: int):
        from commentclf.onnx_model import OnnxClassifier

        self.clf = OnnxClassifier(Path(model_dir), threads=threads, max_length=max_length, prefix=prefix)
        self.text_column, self.id_column = columns
        self.batch_size = batch_size

    def __call__(self, batch):
        df = pl.from_arrow(batch).with_columns(pl.col("__row").cast(pl.Int64).alias(ORDER))
        return label_part(self.clf, df, self.text_column, self.id_column, self.batch_size).to_arrow()


def _init_ray(ray, opts: RayOptions) -> tuple[bool, int]:
    """Attach to a cluster or start a local Ray; (True when this run started it and must stop it, the number
    of actors: `opts.actors`, or as many as the CPUs hold).

    Ray Data lists the input files in a task that asks for a whole CPU (no setting changes that); with
    every CPU held by actors it would wait forever. So a local Ray gets one logical CPU more than the
    cores it may use, and a cluster must have one CPU beyond the actors' (checked)."""
    started = not ray.is_initialized()
    address = opts.address or os.environ.get("RAY_ADDRESS")
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if started and address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError) as err:
            raise EngineError(f"cannot attach to the Ray cluster at {address}: {err}") from None
    elif started:
        # Ray starts workers at niceness 15, as if they were background work; here the actors are the run, and
        # at 15 any other busy process on the machine starves them (a labelling run stalled for minutes behind
        # one training process). The run's own Ray gives them normal priority, unless the user set it.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=(opts.num_cpus or os.cpu_count() or 1) + 1, **kwargs)
    cpus = ray.cluster_resources().get("CPU", 0)
    actors = opts.actors or max(1, int(cpus - 1) // opts.threads)
    if cpus < actors * opts.threads + 1:
        if started:
            ray.shutdown()
        raise EngineError(
            f"the Ray cluster has {cpus:g} CPUs; {actors} actors x {opts.threads} threads and one CPU for "
            f"Ray Data's file listing need {actors * opts.threads + 1}: give fewer --actors or --threads"
        )
    return started, actors


def _check_rows(files: list[Path], total: int) -> None:
    """Every input row number 0..total-1 exactly once across Ray's output files, or a clear error."""
    if not files:
        raise DataError(f"Ray wrote no output for {total} input rows")
    counts = pl.scan_parquet(files).select(
        pl.len().alias("rows"),
        pl.col(ORDER).n_unique().alias("unique"),
        pl.col(ORDER).min().alias("low"),
        pl.col(ORDER).max().alias("high"),
    )
    rows, unique, low, high = counts.collect().row(0)
    if (rows, unique, low, high) != (total, total, 0, total - 1):
        raise DataError(
            f"Ray returned {rows} rows ({unique} distinct, numbers {low}..{high}) for {total} input rows; "
            "nothing was filed: run the same command again"
        )


def _in_input_order(files: list[Path]):
    """(first row, frame) pairs of Ray's output, in input order. Each file holds one write task's rows (a bounded
    block): sorted in memory, and the files taken in the order of their first row when their row ranges
    tile the input, which is what preserve_order gives; otherwise one sort over all of them."""
    spans = []
    for f in files:
        stats = pl.scan_parquet(f).select(pl.col(ORDER).min().alias("low"), pl.len().alias("rows"))
        low, rows = stats.collect().row(0)
        if rows:
            spans.append((low, rows, f))
    spans.sort(key=lambda span: span[0])
    # rows are distinct and cover 0..total-1 (_check_rows): ranges tile when each starts where the last ended
    ends = [0] + [low + rows for low, rows, _ in spans[:-1]]
    if [low for low, _, _ in spans] == ends:
        for low, _, f in spans:
            yield low, pl.read_parquet(f).sort(ORDER)
    else:
        yield 0, pl.scan_parquet(files).sort(ORDER).collect()


def _map_parts(ray, opts: RayOptions, actor, kwargs: dict, staged: Path, blocks: int, part_rows: int, written: Path):
    """Ray Data over the staged parquet parts: read, `actor` (built once per replica from `kwargs`) on each
    part, write parquet to `written`. Starts (and stops) a local Ray or attaches to a cluster (`opts`)."""
    started, actors = _init_ray(ray, opts)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # output in input order: the parts are filed as written
        # Reading and writing parquet is light work: a sliver of a CPU each leaves the cores to the actors.
        ds = ray.data.read_parquet(str(staged), num_cpus=IO_CPUS, override_num_blocks=blocks)
        # Ray's parquet reader packs files into read units of up to 128 MiB whatever override_num_blocks says,
        # so the staged parts came back as one block: one task, on one actor, while the others sat idle (and
        # nothing was written or retried part by part). Cut the blocks back to parts (a streaming operator).
        ds = ds.repartition(target_num_rows_per_block=part_rows, strict=True)
        ds.map_batches(
            actor,
            fn_constructor_kwargs=kwargs,
            batch_size=part_rows,
            batch_format="pyarrow",
            # One part in flight per actor: by default Ray queues two on the first actor to come up, and with
            # a few long parts the last actors to start sit idle while the first works through its queue.
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
            num_cpus=opts.threads,
        ).write_parquet(str(written), ray_remote_args={"num_cpus": IO_CPUS})
    except Exception as err:  # a worker's exception arrives wrapped in Ray's; say what failed, keep the cause
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise EngineError(
            f"the Ray run failed ({type(err).__name__}: {first[:300]}); nothing was filed: run the same "
            "command again (see Ray's logs under /tmp/ray/session_latest/logs)"
        ) from err
    finally:
        if started:
            ray.shutdown()


def label_file_ray(
    clf,
    model_dir: Path,
    input: Path,
    out_dir: Path,
    opts: RayOptions,
    text_column: str = "text",
    id_column: str = "id",
    part_rows: int = 10_000,
    batch_size: int = 1,
) -> dict:
    """`streaming.label_file` on Ray: same output, same manifest (engine "ray"). `clf` is the driver's copy of
    the model (its hash names the output; it labels nothing unless the input has no rows)."""
    ray = import_ray()
    scan, manifest = open_output(clf, input, out_dir, text_column, id_column, part_rows, engine="ray")
    if manifest["complete"]:
        return manifest
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (*manifest["parts"], {"file": STAGED}, {"file": WRITTEN}):  # an unfinished run starts again
        path = out_dir / stale["file"]
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    manifest["parts"] = []
    write_manifest(out_dir, manifest)
    total = table_rows(input)
    if total == 0:  # a header-only file: one empty part with the output's columns, as the local engine writes
        empty = label_part(clf, scan.with_row_index("__row").head(0).collect(), text_column, id_column, batch_size)
        add_part(out_dir, manifest, 0, empty)
        return finish_output(out_dir, manifest, input, total)

    staged, written = out_dir / STAGED, out_dir / WRITTEN
    staged.mkdir()
    blocks = 0
    for blocks, df in enumerate(input_parts(input, 0, part_rows), start=1):
        df.write_parquet(staged / part_name(blocks - 1))
    kwargs = {
        "model_dir": str(model_dir.resolve()),
        "max_length": clf.max_length,
        "prefix": clf.prefix,
        "threads": opts.threads,
        "columns": (text_column, id_column),
        "batch_size": batch_size,
    }
    _map_parts(ray, opts, Labeller, kwargs, staged, blocks, part_rows, written)

    files = sorted(written.glob("*.parquet"))
    _check_rows(files, total)
    for start, df in _in_input_order(files):
        add_part(out_dir, manifest, start, df.drop(ORDER))
    shutil.rmtree(staged)
    shutil.rmtree(written)
    return finish_output(out_dir, manifest, input, total)


class RowScoring:
    """One actor: llm_label's RowScorer (e5 and the model teachers), loaded once, scoring Arrow batches."""

    def __init__(self, cfg, encoder: str, setfit_dir: str, llm_dir: str, threads: int):
        from commentclf.scoring import RowScorer

        self.scorer = RowScorer(cfg, encoder, Path(setfit_dir), Path(llm_dir), threads)

    def __call__(self, batch):
        df = pl.from_arrow(batch)
        scores = self.scorer(df["text"].to_list(), df["needs_models"].to_numpy())
        columns = [pl.Series(name, values) for name, values in scores.items()]  # 2-D arrays become Array columns
        return pl.DataFrame([df["__row"].cast(pl.Int64).alias(ORDER), *columns]).to_arrow()


def score_rows_ray(
    cfg, encoder: str, setfit_dir: Path, llm_dir: Path, texts: list[str], needs_models, opts: RayOptions, work_dir: Path
) -> dict:
    """`scoring.score_rows` on Ray: the same parts of `cfg.label.part_rows` rows, scored by `opts.actors`
    RowScoring actors; the rows come back checked (each exactly once) and in input order. `work_dir` holds
    the staged input and Ray's output while it runs."""
    ray = import_ray()
    part_rows = cfg.label.part_rows
    staged, written = work_dir / STAGED, work_dir / WRITTEN
    for stale in (staged, written):
        shutil.rmtree(stale, ignore_errors=True)
    staged.mkdir(parents=True)
    rows = pl.DataFrame({"__row": np.arange(len(texts)), "text": texts, "needs_models": np.asarray(needs_models)})
    blocks = 0
    for blocks, start in enumerate(range(0, len(texts), part_rows), start=1):
        rows.slice(start, part_rows).write_parquet(staged / part_name(blocks - 1))
    kwargs = {
        "cfg": cfg,
        "encoder": str(Path(encoder).resolve()) if Path(encoder).exists() else encoder,  # a folder, or a hub id
        "setfit_dir": str(Path(setfit_dir).resolve()),
        "llm_dir": str(Path(llm_dir).resolve()),
        "threads": opts.threads,
    }
    _map_parts(ray, opts, RowScoring, kwargs, staged, blocks, part_rows, written)
    files = sorted(written.glob("*.parquet"))
    _check_rows(files, len(texts))
    scored = pl.scan_parquet(files).sort(ORDER).collect()
    shutil.rmtree(staged)
    shutil.rmtree(written)
    return {name: scored[name].to_numpy() for name in scored.columns if name != ORDER}
