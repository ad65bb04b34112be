"""Stage `e5_train`: distil the teachers into a small encoder classifier (the student).

Training rows: the train split + the pool rows llm_label kept (+ synthetic comments, a switch), as hard or
soft targets per llm_label's recipe (data/recipe.json, chosen on the seed); the best epoch is chosen on dev
(commentclf.student.distill).
Saves the student (an ordinary model folder with id2label), its dev metrics, training time, rows per
source, the per-epoch curve (DVCLive) and, with student.compare_heads, the other heads side by side."""

from pathlib import Path

import typer
from rich.console import Console

from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.files import write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.student.distill import distill, distillation_set
from commentclf.teachers.recipe import Recipe
from commentclf.tracking import log_curve


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    pseudo: Path = typer.Option(..., help="pseudo-labelled pool rows (llm_label)"),
    recipe: Path = typer.Option(..., help="how the student learns from them (llm_label's recipe, JSON)"),
    synthetic: Path = typer.Option(..., help="kept synthetic comments (student.use_synthetic)"),
    out_dir: Path = typer.Option(..., help="where the student is saved"),
    metrics: Path = typer.Option(..., help="dev metrics and rows per source (JSON)"),
    live_dir: Path = typer.Option(..., help="DVCLive folder of the per-epoch curve"),
) -> None:
    cfg = load_params(params)
    seed_everything(cfg.seed)
    train, dev = read_split(split_dir, "train"), read_split(split_dir, "dev")
    body = cfg.student.body or read_manifest(assets)["encoder"]
    d = distillation_set(train, dev, pseudo, synthetic, Recipe.load(recipe), body, cfg)
    chosen, report = distill(d, cfg, out_dir)
    write_json(metrics, report)
    log_curve(live_dir, chosen.history or [], step="epoch")
    Console().print(
        f"student ({cfg.student.mode}/{chosen.head}) dev macro-F1 {chosen.dev['macro_f1']:.3f}, "
        f"{cfg.minority_label} F1 {chosen.dev['minority_f1']:.3f}; rows {report['rows']}"
    )


if __name__ == "__main__":
    run(main)
