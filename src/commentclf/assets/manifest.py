"""The base models' manifest: where the `assets` stage put each model ("encoder", "llm"), read by every
later stage. Apart from `assets` so that reading it does not make a stage depend on the converters."""

from __future__ import annotations

import json
from pathlib import Path

from commentclf.errors import AssetError

MANIFEST = "assets.json"


def write_manifest(locations: dict[str, str], assets_dir: Path) -> None:
    """Where each base model is ("encoder", "llm"): a folder inside `assets_dir`, or a hub id."""
    (Path(assets_dir) / MANIFEST).write_text(json.dumps(locations, indent=2) + "\n")


def read_manifest(assets_dir: str | Path) -> dict[str, str]:
    path = Path(assets_dir) / MANIFEST
    if not path.is_file():
        raise AssetError(f"{path} not found: run `dvc repro assets` first")
    return json.loads(path.read_text())
