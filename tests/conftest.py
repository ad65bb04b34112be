"""Shared fixtures. Importing commentclf sets the offline environment before any library loads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import commentclf  # noqa: F401  (sets HF_HUB_OFFLINE & co. first)

REPO = Path(__file__).resolve().parents[1]
RUW = REPO.parent / "shared" / "datasets" / "ruw"
LABELS = ["pro_ukraine", "pro_russia", "off_topic"]


def base_params(**data) -> dict:
    """A valid params mapping over the three demo labels."""
    return {
        "labels": [{"name": n, "description": f"description of {n}"} for n in LABELS],
        "minority_label": "pro_russia",
        "data": {"labeled": "labeled.csv", "unlabeled": "pool.csv", **data},
    }


@pytest.fixture
def params_dict() -> dict:
    return base_params()


def copy_repo(dest: Path) -> Path:
    """A throwaway copy of the repository's tracked (and not ignored) files, as a fresh git repo, so
    pipeline tests never touch the working tree's outputs."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=commentclf-tests", "-c", "user.email=tests@localhost"]
    subprocess.run(git + ["init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "copy"], cwd=dest, check=True)
    return dest
