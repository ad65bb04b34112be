"""Files the pipeline writes and measures: metric JSON (what DVC tracks and `dvc metrics diff` compares),
canonical JSON for saved models, sizes on disk and content hashes."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    # NaN/inf are not JSON; write null so `dvc metrics diff` shows the hole instead of failing to parse.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` then rename over `path`: a reader (or a rerun after a crash) sees the old file or the whole
    new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


def canonical_json(path: str | Path, sorted_lists: tuple[str, ...] = ()) -> None:
    """Rewrite a JSON file that a library wrote from a Python set (peft's `target_modules`, setfit's config
    keys): set order follows the process's string hash seed, so the same model got other bytes, hence
    another DVC hash and needless downstream reruns, on every run. Keys are sorted, and so are the
    top-level lists named in `sorted_lists` (only lists whose order means nothing)."""
    path = Path(path)
    data = json.loads(path.read_text())
    for key in sorted_lists:
        if isinstance(data.get(key), list):
            data[key] = sorted(data[key])
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def size_mb(*paths: str | Path, digits: int = 1) -> float | None:
    """Size on disk in MB of files and folders together; None when one of them does not exist (a model
    given as a hub id has no local folder to measure)."""
    total = 0
    for path in map(Path, paths):
        if not path.exists():
            return None
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return round(total / 2**20, digits)


def model_version(*paths: Path) -> str:
    """Short content hash of a model's files (the model, then e.g. its calibration): tells which model
    answered (serve), labelled (predict) or pre-annotated (suggest)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:12]
