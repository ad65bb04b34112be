"""The annotation loop against a real Label Studio from PyPI, on 127.0.0.1 with SQLite: the generated labelling
interface and tasks are accepted, the pre-annotations arrive, answers given through its API come back out
of its export and through `commentclf annotations import` into the labelled file.

Label Studio pins its own Django, pandas and numpy, so it lives in its own virtualenv (created once in
.label-studio/, ignored by git, or given by LABEL_STUDIO_VENV), installed from label-studio.lock beside this
file (pip freeze of a working install): unpinned, a new release of one of its dependencies (sentry-sdk 3.0)
stopped Label Studio 1.23.2 from starting."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
import yaml

from conftest import REPO, run_cmd

pytestmark = pytest.mark.slow  # installs and starts Label Studio; needs the smoke pipeline's suggestions

LABEL_STUDIO = "label-studio==1.23.2"
LOCK = Path(__file__).with_name("label-studio.lock")
TOKEN = "commentclf-test-token"


def label_studio_bin() -> Path:
    venv = Path(os.environ.get("LABEL_STUDIO_VENV", REPO / ".label-studio"))
    binary = venv / "bin" / "label-studio"
    if not binary.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin/pip"), "install", "-q", "-c", str(LOCK), LABEL_STUDIO]
        subprocess.run(pip, check=True, timeout=1200)
    return binary


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    binary = label_studio_bin()
    data = tmp_path_factory.mktemp("label-studio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(binary), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1"]
    cmd += ["--data-dir", str(data), "--username", "annotator@example.com", "--password", "not-a-secret-1"]
    cmd += ["--user-token", TOKEN, "--enable-legacy-api-token"]
    log = open(data / "server.log", "w")
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data)}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # the first start runs the database migrations
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"Label Studio exited: {(data / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        proc.kill()
        raise AssertionError(f"Label Studio did not start: {(data / 'server.log').read_text()[-3000:]}")
    yield httpx.Client(base_url=url, headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    proc.terminate()
    proc.wait(timeout=60)
    log.close()


def choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def test_round_trip_through_label_studio(smoke_repo, label_studio, tmp_path):
    annotation = smoke_repo / "annotation"
    tasks = json.loads((annotation / "tasks.json").read_text())
    version = json.loads((smoke_repo / "metrics/suggest.json").read_text())["model_version"]
    ls = label_studio
    project = ls.post(
        "/api/projects", json={"title": "commentclf", "label_config": (annotation / "label_config.xml").read_text()}
    )
    assert project.status_code == 201, project.text  # Label Studio validated the interface
    pid = project.json()["id"]
    imported = ls.post(f"/api/projects/{pid}/import", json=tasks)
    assert imported.status_code == 201, imported.text
    assert imported.json()["task_count"] == imported.json()["prediction_count"] == len(tasks)
    stored = ls.get("/api/tasks", params={"project": pid, "fields": "all", "page_size": 1000}).json()["tasks"]
    by_text = {t["data"]["text"]: t for t in stored}
    for task in tasks:  # every pre-annotation arrived, with its model version, score and choice
        (prediction,) = by_text[task["data"]["text"]]["predictions"]
        assert prediction["model_version"] == version
        assert prediction["result"] == task["predictions"][0]["result"]
        assert abs(prediction["score"] - task["predictions"][0]["score"]) < 1e-6

    # an annotator answers three tasks and cancels a fourth; the rest stay untouched
    answers = ["pro_russia", "off_topic", "pro_ukraine"]
    texts = [t["data"]["text"] for t in tasks]
    for text, label in zip(texts, answers):
        done = ls.post(f"/api/tasks/{by_text[text]['id']}/annotations", json={"result": choice(label)})
        assert done.status_code == 201, done.text
    ls.post(f"/api/tasks/{by_text[texts[3]]['id']}/annotations", json={"result": [], "was_cancelled": True})
    export = ls.get(f"/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"})
    assert export.status_code == 200 and len(export.json()) == len(tasks)
    (tmp_path / "export.json").write_text(export.text)

    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    (tmp_path / "labeled.csv").write_bytes((smoke_repo / params["data"]["labeled"]).read_bytes())
    params["data"]["labeled"] = str(tmp_path / "labeled.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = pl.read_csv(tmp_path / "labeled.csv")
    cmd = ["commentclf", "annotations", "import", str(tmp_path / "export.json"), "--params"]
    out = " ".join(run_cmd([*cmd, str(tmp_path / "params.yaml")], smoke_repo).stdout.split())
    assert "added │ 3" in out and f"skipped or cancelled │ {len(tasks) - 3}" in out, out
    after = pl.read_csv(tmp_path / "labeled.csv")
    assert after.tail(3).select("text", "label").rows() == list(zip(texts[:3], answers))
    assert len(after) == len(before) + 3

    # a review round: the doubted labelled rows go in with their given label pre-selected; the annotator
    # changes the first and confirms the second; the change is applied only when accepted, the old label kept
    review = json.loads((annotation / "review.json").read_text())
    assert len(review) >= 2 and all(t["predictions"][0]["result"] == choice(t["data"]["given_label"]) for t in review)
    imported = ls.post(f"/api/projects/{pid}/import", json=review[:2])
    assert imported.status_code == 201, imported.text
    stored = ls.get("/api/tasks", params={"project": pid, "fields": "all", "page_size": 1000}).json()["tasks"]
    by_text = {t["data"]["text"]: t for t in stored}
    first, second = (t["data"] for t in review[:2])
    fixed = next(label for label in (x["name"] for x in params["labels"]) if label != first["given_label"])
    for data, label in ((first, fixed), (second, second["given_label"])):
        done = ls.post(f"/api/tasks/{by_text[data['text']]['id']}/annotations", json={"result": choice(label)})
        assert done.status_code == 201, done.text
    export = ls.get(f"/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"})
    (tmp_path / "review.json").write_text(export.text)
    cmd = [
        "commentclf",
        "annotations",
        "import",
        str(tmp_path / "review.json"),
        "--params",
        str(tmp_path / "params.yaml"),
    ]
    out = " ".join(run_cmd(cmd, smoke_repo).stdout.split())
    assert "corrections applied │ 0" in out and "--accept-corrections) │ 1" in out, out
    assert pl.read_csv(tmp_path / "labeled.csv").equals(after)  # nothing changed without the flag
    out = " ".join(run_cmd([*cmd, "--accept-corrections"], smoke_repo).stdout.split())
    assert "corrections applied │ 1" in out, out
    corrected = pl.read_csv(tmp_path / "labeled.csv").filter(pl.col("text") == first["text"])
    assert corrected.select("label", "label_history").rows() == [(fixed, first["given_label"])]
