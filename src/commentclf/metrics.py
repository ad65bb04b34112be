"""Metric files: small JSON documents that DVC tracks (`metrics:` in dvc.yaml) and `dvc metrics diff` compares."""

from __future__ import annotations

import json
import math
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


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
