"""Profiles: named sets of overrides of params.yaml (profiles/<name>.yaml), applied to a run through
`dvc exp run -S key=value` so params.yaml itself is never edited by hand."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from commentclf.config import Params, ParamsError, load_params, parse_params

PROFILE_DIR = Path("profiles")


def load_profile(name_or_path: str | Path) -> dict:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ParamsError(f"{path}: profile not found (known profiles: {known})")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: a profile is a mapping of params to override")
    return data


def merge(base: dict, overrides: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else (scalars, lists) replaces."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_profile(name: str, params_path: str | Path = "params.yaml") -> Params:
    """params.yaml + the profile, validated (errors name the bad key and the profile)."""
    load_params(params_path)  # the base must be valid on its own
    raw = yaml.safe_load(Path(params_path).read_text(encoding="utf-8"))
    return parse_params(merge(raw, load_profile(name)), source=f"{params_path} + profile {name}")


def set_param_args(overrides: dict, prefix: str = "") -> list[str]:
    """`-S key=value` arguments for `dvc exp run`, one per leaf; lists and null as YAML flow values."""
    args: list[str] = []
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            args += set_param_args(value, dotted + ".")
        else:
            args += ["-S", f"{dotted}={_flow(value)}"]
    return args


_PLAIN = re.compile(r"^[A-Za-z0-9_./-]+$")


def _flow(value: Any) -> str:
    """A value in the override grammar of `dvc exp run -S` (Hydra's), which also reads back as the same
    YAML: strings double-quoted with only \\ and \" escaped, mapping keys bare, lists and maps in flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value not in ("null", "true", "false") and not _is_number(value):
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    raise ParamsError(f"cannot pass a {type(value).__name__} as a param override: {value!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
