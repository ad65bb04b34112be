"""Label a file on Ray Data (`commentclf predict --engine ray`) and score llm_label's rows on it
(`label.engine: ray`, commentclf.scoring): the model on a pool of actors that may span a cluster, the results
back at the driver, which files them as the local engine does.

The input goes in as parts of `part_rows` rows carrying their row number. An actor pool maps them (each actor
loads the model once: the ONNX student, or llm_label's RowScorer), and the results stream back to the driver in
input order (`iter_batches`). The driver checks that each result holds the next input rows and files it:
`predict` as the local engine's output parts under its manifest (`streaming.label_file`, so a killed run goes
on from its last filed part, on either engine), `llm_label` as the arrays the stage fits on.

The parts reach Ray through its object store (`from_arrow_refs`): the driver reads the input a part at a time,
as the local engine does, and puts each part there; one part is one block, hence one task, free to go to any
actor on any node. No worker reads or writes a file of ours, so the nodes need no shared disk, only the model
folder at the same path. Ray restarts an actor whose process died and retries its task; the driver only ever
sees a task's final result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import polars as pl

from commentclf.errors import DataError, EngineError
from commentclf.streaming import label_file, label_part

ORDER = "__order"  # the input row number, carried through Ray so the driver can check and order the rows


@dataclass
class RayOptions:
    address: str | None = None
    """A running cluster (`ray start --head` prints it); None attaches to RAY_ADDRESS, else starts a local Ray."""
    num_cpus: int | None = None
    """CPUs of the local Ray started for the run (None: all); ignored when attaching to a cluster."""
    actors: int | None = None
    """Model replicas: actors that each load the model once and label parts. None: as many as the nodes' CPUs
    hold at `threads` each (a local Ray's `num_cpus`)."""
    threads: int = 1
    """Ray CPUs reserved per actor, and the threads its model uses: for the student, that many one-thread model
    calls at once (as the local engine's `--workers`); torch's threads for llm_label."""


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

        # One text per call keeps one thread busy, not two: an actor of T CPUs makes T one-thread calls at once.
        self.clf = OnnxClassifier(Path(model_dir), threads=1, max_length=max_length, prefix=prefix, workers=threads)
        self.text_column, self.id_column = columns
        self.batch_size = batch_size

    def __call__(self, batch):
        df = pl.from_arrow(batch).with_columns(pl.col("__row").cast(pl.Int64).alias(ORDER))
        return label_part(self.clf, df, self.text_column, self.id_column, self.batch_size).to_arrow()


def _init_ray(ray, opts: RayOptions) -> tuple[bool, int]:
    """Attach to a cluster or start a local Ray; (True when this run started it and must stop it, the number
    of actors: `opts.actors`, or as many as the nodes' CPUs hold at `opts.threads` each). A count the nodes
    cannot hold is refused here: Ray would wait for the missing actors forever."""
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
        ray.init(num_cpus=opts.num_cpus or os.cpu_count() or 1, **kwargs)
    node_cpus = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]]
    fit = sum(int(cpus) // opts.threads for cpus in node_cpus)  # an actor's threads are on one node
    actors = opts.actors or max(1, fit)
    if actors > fit:
        if started:
            ray.shutdown()
        raise EngineError(
            f"the Ray cluster's nodes have {', '.join(f'{c:g}' for c in node_cpus)} CPUs: room for {fit} actors of "
            f"{opts.threads} threads, not {actors}; give fewer --actors or --threads"
        )
    return started, actors


def _map(ray, opts: RayOptions, tables: Iterable, actor, kwargs: dict, part_rows: int) -> Iterator:
    """`actor` (built once per replica from `kwargs`) over `tables` (Arrow, one per part) on a pool of actors;
    yields the results (Arrow tables) as they come, in input order. Starts (and stops) a local Ray, or attaches
    to a cluster (`opts`)."""
    started, actors = _init_ray(ray, opts)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # results in input order: the driver files them as they come
        # The parts go to Ray's object store from here, one at a time (it spills to disk when full): each is
        # one block, hence one task, free to go to any actor on any node, and no node needs our files.
        parts = ray.data.from_arrow_refs([ray.put(table) for table in tables])
        results = parts.map_batches(
            actor,
            fn_constructor_kwargs=kwargs,
            batch_size=part_rows,
            batch_format="pyarrow",
            # One part in flight per actor: by default Ray queues two on the first actor to come up, and with
            # a few long parts the last actors to start sit idle while the first works through its queue.
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
            num_cpus=opts.threads,
        )
        yield from results.iter_batches(batch_size=None, batch_format="pyarrow")
    except Exception as err:  # a worker's exception arrives wrapped in Ray's; say what failed, keep the cause
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise EngineError(
            f"the Ray run failed ({type(err).__name__}: {first[:300]}); what was filed is kept: run the same "
            "command again (see Ray's logs under /tmp/ray/session_latest/logs)"
        ) from err
    finally:
        if started:
            ray.shutdown()


def _next_rows(tables: Iterator, first_row: int) -> Iterator[pl.DataFrame]:
    """Ray's results as frames without the row number, each checked to hold the input rows that come next, so
    a row lost, repeated or out of place stops the run before it is filed."""
    start = first_row
    with closing(tables):  # stopping early stops the run (and the Ray it started) now, not at garbage collection
        for table in tables:
            df = pl.from_arrow(table)
            if df[ORDER].to_list() != list(range(start, start + len(df))):
                raise DataError(
                    f"Ray returned rows {df[ORDER].min()}..{df[ORDER].max()} ({len(df)}) where rows from {start} "
                    "were due; what came before was filed: run the same command again"
                )
            start += len(df)
            if len(df):
                yield df.drop(ORDER)


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
    on_part: Callable[[dict, int], None] | None = None,
) -> dict:
    """`streaming.label_file` with the parts labelled on Ray: same output, same manifest (engine "ray"), same
    resuming. `clf` is the driver's copy of the model (its hash names the output)."""
    ray = import_ray()
    kwargs = {
        "model_dir": str(model_dir.resolve()),
        "max_length": clf.max_length,
        "prefix": clf.prefix,
        "threads": opts.threads,
        "columns": (text_column, id_column),
        "batch_size": batch_size,
    }

    def on_ray(parts: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        first = next(parts, None)
        if first is not None:
            tables = (df.to_arrow() for df in chain([first], parts))  # one part in this process at a time
            yield from _next_rows(_map(ray, opts, tables, Labeller, kwargs, part_rows), first["__row"][0])

    return label_file(clf, input, out_dir, text_column, id_column, part_rows, batch_size, on_part, ("ray", on_ray))


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
    cfg, encoder: str, setfit_dir: Path, llm_dir: Path, texts: list[str], needs_models, opts: RayOptions
) -> dict:
    """`scoring.score_rows` on Ray: the same parts of `cfg.label.part_rows` rows, scored by `opts.actors`
    RowScoring actors; the rows come back checked (each exactly once) and in input order."""
    ray = import_ray()
    part_rows = cfg.label.part_rows
    rows = pl.DataFrame({"__row": np.arange(len(texts)), "text": texts, "needs_models": np.asarray(needs_models)})
    parts = [rows.slice(start, part_rows).to_arrow() for start in range(0, len(texts), part_rows)]
    kwargs = {
        "cfg": cfg,
        "encoder": str(Path(encoder).resolve()) if Path(encoder).exists() else encoder,  # a folder, or a hub id
        "setfit_dir": str(Path(setfit_dir).resolve()),
        "llm_dir": str(Path(llm_dir).resolve()),
        "threads": opts.threads,
    }
    results = _map(ray, opts, parts, RowScoring, kwargs, part_rows)
    scored = pl.concat(list(_next_rows(results, 0)))
    if len(scored) != len(texts):
        raise DataError(f"Ray returned {len(scored)} scored rows for {len(texts)}; run the stage again")
    return {name: scored[name].to_numpy() for name in scored.columns}
