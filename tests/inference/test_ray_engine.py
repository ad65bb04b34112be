"""`commentclf predict --engine ray`: the same output as the local engine, on a local Ray, on a two-node
cluster, and after one of its actors is killed; a clear message without the `ray` extra; workers at normal
priority. `llm_label` with `label.engine: ray`: the local engine's pseudo-labels."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from commentclf.errors import EngineError
from conftest import run_cmd


def test_missing_extra_names_it(monkeypatch, tmp_path):
    from commentclf.cli import app
    from commentclf.ray_engine import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(EngineError, match=r"pip install -e '\.\[ray\]'"):
        import_ray()
    (tmp_path / "in.csv").write_text("text\nbonjour\n")
    result = CliRunner().invoke(
        app, ["predict", "--input", str(tmp_path / "in.csv"), "--output", "x", "--engine", "ray"]
    )
    assert result.exit_code == 1 and ".[ray]" in result.output


@pytest.fixture(scope="module")
def student(smoke_repo):
    return smoke_repo / "models/onnx/int8"


@pytest.fixture(scope="module")
def comments(smoke_repo, tmp_path_factory):
    """Pool texts repeated to `n` rows, some empty, no id column (ids are the row numbers)."""

    def make(n: int) -> Path:
        pool = pl.read_parquet(smoke_repo / "data/split/pool.parquet")["text"]
        texts = [pool[i % len(pool)] for i in range(n)]
        for i in range(5, n, 97):
            texts[i] = ""
        path = tmp_path_factory.mktemp("ray") / f"in{n}.csv"
        pl.DataFrame({"text": texts, "source": ["x"] * n}).write_csv(path)
        return path

    return make


def predict(smoke_repo, student, input, output, *extra, check=True):
    cmd = ["commentclf", "predict", "--input", str(input), "--output", str(output), "--model", str(student)]
    return run_cmd([*cmd, "--part-rows", "100", *extra], smoke_repo, check=check, timeout=900)


def frame(output: Path) -> pl.DataFrame:
    from commentclf.inference.streaming import read_output

    return read_output(output).collect()


@pytest.mark.slow
def test_ray_equals_local(smoke_repo, student, comments, tmp_path):
    src = comments(450)
    predict(smoke_repo, student, src, tmp_path / "local")
    predict(smoke_repo, student, src, tmp_path / "ray", "--engine", "ray", "--num-cpus", "2", "--actors", "2")
    local, ray = frame(tmp_path / "local"), frame(tmp_path / "ray")
    assert ray.equals(local) and ray["id"].to_list() == list(range(450))
    assert ray["label"].null_count() == 5
    # a finished output is a no-op to rerun, and local output is never mixed into a Ray one
    predict(smoke_repo, student, src, tmp_path / "ray", "--engine", "ray", "--num-cpus", "2", "--actors", "2")
    proc = predict(smoke_repo, student, src, tmp_path / "ray", check=False)
    assert proc.returncode == 1 and "different engine" in proc.stdout + proc.stderr


def _labeller_actors() -> list:
    import psutil

    return [p for p in psutil.process_iter(["cmdline"]) if "MapBatches(Predictor)" in " ".join(p.info["cmdline"] or [])]


@pytest.mark.slow
def test_a_killed_actor_is_replaced_and_every_row_comes_once(smoke_repo, student, comments, tmp_path):
    src = comments(3000)
    predict(smoke_repo, student, src, tmp_path / "local")
    cmd = ["commentclf", "predict", "--input", str(src), "--output", str(tmp_path / "ray"), "--model", str(student)]
    cmd += ["--part-rows", "100", "--engine", "ray", "--num-cpus", "2", "--actors", "2"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.Popen(cmd, cwd=smoke_repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not _labeller_actors() and run.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(5)  # mid-run: the actors have loaded the model and labelled some batches
    actors = _labeller_actors()
    assert actors and run.poll() is None, "the run ended before an actor could be killed"
    os.kill(actors[0].pid, signal.SIGKILL)
    out, _ = run.communicate(timeout=900)
    assert run.returncode == 0, out[-3000:]
    assert frame(tmp_path / "ray").equals(frame(tmp_path / "local"))


@pytest.mark.slow
def test_two_node_cluster(smoke_repo, student, comments, tmp_path, monkeypatch):
    """A head and a second node, each its own raylet on 127.0.0.1; the run attaches with --address."""
    # `ray start --head` turns token authentication on (its token in ~/.ray); whoever joins must ask for it
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    ray = [str(Path(sys.executable).parent / "ray")]
    port = "6391"
    address = f"127.0.0.1:{port}"
    try:
        run_cmd([*ray, "start", "--head", "--port", port, "--num-cpus", "1", "--include-dashboard", "false"], tmp_path)
        run_cmd([*ray, "start", "--address", address, "--num-cpus", "2"], tmp_path)
        nodes = run_cmd([sys.executable, "-c", NODES.format(address=address)], tmp_path).stdout
        assert json.loads(nodes.strip().splitlines()[-1]) == 2
        src = comments(2000)
        predict(smoke_repo, student, src, tmp_path / "local")
        predict(smoke_repo, student, src, tmp_path / "ray", "--engine", "ray", "--address", address)  # 3 actors
        assert frame(tmp_path / "ray").equals(frame(tmp_path / "local"))
        # the nodes hold 3 one-thread actors (1 + 2 CPUs) and one of 2 threads: more is refused, not a hang
        for too_many in (["--actors", "4"], ["--actors", "2", "--threads", "2"]):
            big = [src, tmp_path / "big", "--engine", "ray", "--address", address, *too_many]
            proc = predict(smoke_repo, student, *big, check=False)
            assert proc.returncode == 1 and "give fewer --actors" in proc.stdout + proc.stderr
    finally:
        run_cmd([*ray, "stop", "--force"], tmp_path, check=False)


NODES = """
import json, ray
ray.init(address="{address}", log_to_driver=False)
print(json.dumps(len([n for n in ray.nodes() if n["Alive"]])))
"""


@pytest.mark.slow
def test_llm_label_on_ray_gives_the_local_pseudo_labels(smoke_repo, tmp_path):
    """`label.engine: ray` scores the rows on two actors (e5, SetFit and the LLM teacher each loaded once per
    actor) and gives the local engine's pseudo-labels: the same argmax, probabilities within 1e-5."""
    import numpy as np
    import yaml

    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    outputs = {}
    for engine in ("local", "ray"):
        params["label"].update(engine=engine, part_rows=16, ray_actors=2, ray_threads=1)  # several parts
        (tmp_path / f"{engine}.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
        out = tmp_path / engine
        cmd = ["python", "stages/llm_label.py", "--params", str(tmp_path / f"{engine}.yaml")]
        cmd += ["--assets", "models/base", "--split-dir", "data/split", "--setfit-dir", "models/setfit"]
        cmd += ["--llm-dir", "models/llm", "--teachers-out", str(out / "teachers.joblib")]
        cmd += ["--ensemble-out", str(out / "ensemble.json"), "--out", str(out / "pseudo.parquet")]
        cmd += ["--recipe-out", str(out / "recipe.json"), "--seed-oof", str(out / "seed_oof.parquet")]
        cmd += ["--server-cache", str(out / "llm_server_cache.sqlite")]
        run_cmd([*cmd, "--metrics", str(out / "label.json")], smoke_repo, timeout=900)
        outputs[engine] = pl.read_parquet(out / "pseudo.parquet")
        assert json.loads((out / "label.json").read_text())["scoring"]["engine"] == engine
    local, ray = outputs["local"], outputs["ray"]
    assert "llm_label" in local.columns and len(local) == params["label"]["max_pool"]
    proba = ["confidence", *(c for c in local.columns if c.startswith("proba_"))]
    assert ray.drop(proba).equals(local.drop(proba))  # ids, texts, labels, every teacher's label, kept
    assert np.abs(ray.select(proba).to_numpy() - local.select(proba).to_numpy()).max() < 1e-5
    assert (tmp_path / "ray/recipe.json").read_text() == (tmp_path / "local/recipe.json").read_text()


@pytest.mark.slow
def test_the_runs_own_ray_runs_its_workers_at_normal_priority(monkeypatch):
    """At Ray's default niceness (15) the actors starve beside any busy process; a local Ray started for the run
    gives them normal priority, and a value the user set is kept. Without --actors, one actor per CPU given."""
    from commentclf.ray_engine import RayOptions, import_ray, init_ray

    ray = import_ray()

    @ray.remote(num_cpus=0)
    def niceness():
        return os.nice(0)

    for preset, expected in ((None, 0), ("5", 5)):
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        if preset is None:
            monkeypatch.delenv("RAY_worker_niceness", raising=False)
        else:
            monkeypatch.setenv("RAY_worker_niceness", preset)
        started, actors = init_ray(ray, RayOptions(num_cpus=2))
        try:
            assert started and actors == 2  # this call started it; no --actors: one per CPU given
            assert ray.get(niceness.remote()) == expected
        finally:
            ray.shutdown()


@pytest.mark.slow
def test_each_part_is_its_own_task(smoke_repo, student):
    """Each part is its own block, hence its own task, free to go to any actor (were parts merged into a block,
    as Ray's parquet reader once did, one actor would label them all while the others idled), and the results
    come back one per part, in input order."""
    from commentclf.config import load_params
    from commentclf.inference.ray_predict import Predictor
    from commentclf.ray_engine import RayOptions, import_ray, map_parts, next_rows

    cfg = load_params(smoke_repo / "params.yaml")
    pool = pl.read_parquet(smoke_repo / "data/split/pool.parquet")["text"]
    parts, part_rows = 5, 40
    tables = []
    for k in range(parts):
        rows = range(k * part_rows, (k + 1) * part_rows)
        tables.append(pl.DataFrame({"__row": list(rows), "text": [pool[i % len(pool)] for i in rows]}).to_arrow())
    kwargs = {"model_dir": str(student.resolve()), "max_length": cfg.student.max_length}
    kwargs |= {"prefix": cfg.student.prefix, "threads": 1, "columns": ("text", "id"), "batch_size": 1}
    results = map_parts(import_ray(), RayOptions(num_cpus=2, actors=2), tables, Predictor, kwargs, part_rows)
    spans = [(df["id"][0], len(df)) for df in next_rows(results, 0)]
    assert spans == [(k * part_rows, part_rows) for k in range(parts)]


@pytest.mark.slow
def test_a_killed_ray_run_goes_on_from_its_last_filed_part(smoke_repo, student, comments, tmp_path):
    """The driver files each part as it comes back: kill the run (driver, Ray and all) and the same command keeps
    the filed parts and labels the rest."""
    import psutil

    src, out = comments(3000), tmp_path / "ray"
    predict(smoke_repo, student, src, tmp_path / "local")
    cmd = ["commentclf", "predict", "--input", str(src), "--output", str(out), "--model", str(student)]
    cmd += ["--part-rows", "100", "--engine", "ray", "--num-cpus", "2", "--actors", "2"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.Popen(cmd, cwd=smoke_repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest, deadline = out / "manifest.json", time.time() + 300
    while run.poll() is None and time.time() < deadline:
        if manifest.is_file() and len(json.loads(manifest.read_text())["parts"]) >= 2:
            break
        time.sleep(0.1)
    tree = [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]  # its Ray too
    for proc in tree:
        proc.kill()
    psutil.wait_procs(tree, timeout=30)
    filed = json.loads(manifest.read_text())
    assert filed["parts"] and not filed["complete"], "the run ended before it could be killed"
    first = (out / filed["parts"][0]["file"]).stat().st_mtime_ns
    predict(smoke_repo, student, src, out, "--engine", "ray", "--num-cpus", "2", "--actors", "2")
    assert frame(out).equals(frame(tmp_path / "local"))
    assert (out / filed["parts"][0]["file"]).stat().st_mtime_ns == first  # kept, not labelled again


def test_rows_lost_repeated_or_out_of_place_stop_the_run():
    """The driver files Ray's results only when each holds the input rows that come next."""
    import pyarrow as pa

    from commentclf.errors import DataError
    from commentclf.ray_engine import ORDER, next_rows

    def results(*orders):
        return (pa.table({ORDER: list(rows), "x": [str(r) for r in rows]}) for rows in orders)

    assert [df["x"].to_list() for df in next_rows(results([7, 8], [], [9]), 7)] == [["7", "8"], ["9"]]
    for bad in ([[0, 1], [1, 2]], [[0, 1], [3]], [[1, 0]], [[1]]):
        with pytest.raises(DataError, match="where rows from"):
            list(next_rows(results(*bad), 0))
