"""Ray Data as an engine, shared by the two jobs that run on it: `commentclf predict --engine ray`
(commentclf.inference.ray_predict) and llm_label's row scoring with `label.engine: ray`
(commentclf.teachers.ray_scoring). Here: attaching to a cluster or starting a local Ray, mapping parts on a
pool of actors, and checking the results' order; each job's actor lives with its job.

The input goes in as parts of `part_rows` rows carrying their row number. An actor pool maps them (each actor
loads its model once), and the results stream back to the driver in input order (`iter_batches`). The driver
checks that each result holds the next input rows before it files it.

The parts reach Ray through its object store (`from_arrow_refs`): the driver reads the input a part at a time
and puts each part there; one part is one block, hence one task, free to go to any actor on any node. No
worker reads or writes a file of ours, so the nodes need no shared disk, only the model folder at the same
path. Ray restarts an actor whose process died and retries its task; the driver only ever sees a task's final
result.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

import polars as pl

from commentclf.errors import DataError, EngineError

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


def init_ray(ray, opts: RayOptions) -> tuple[bool, int]:
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


def map_parts(ray, opts: RayOptions, tables: Iterable, actor, kwargs: dict, part_rows: int) -> Iterator:
    """`actor` (built once per replica from `kwargs`) over `tables` (Arrow, one per part) on a pool of actors;
    yields the results (Arrow tables) as they come, in input order. Starts (and stops) a local Ray, or attaches
    to a cluster (`opts`)."""
    started, actors = init_ray(ray, opts)
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


def next_rows(tables: Iterator, first_row: int) -> Iterator[pl.DataFrame]:
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
