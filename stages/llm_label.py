"""Stage `llm_label`: the teachers label the pool (the student's distillation data).

Despite its name (the design's), on the CPU default the LLM is not among `label.teachers`: the 135M model
answers near chance, so the ensemble is the cheap teachers and SetFit; list `llm` to add it (commentclf.
teachers.labelling). Writes the ensemble (a JSON model file), the cheap teachers refitted on the whole seed,
the pseudo-labelled pool (id, text, label, confidence, kept, <teacher>_label, proba_<label>) and a report of
every teacher and the ensemble on their out-of-fold seed rows; with label.gold, against the pool's true labels.
With `llm_server` listed, an LLM behind an OpenAI-compatible server is a teacher too (label.server); its answers
are cached in `--server-cache`, so a rerun asks only what is missing.
"""

import time
from pathlib import Path

import typer
from rich.console import Console

from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import load_labeled, read_split
from commentclf.files import write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run
from commentclf.teachers.cheap import save_teachers
from commentclf.teachers.ensemble import pseudo_label_accuracy
from commentclf.teachers.labelling import LabellingRows, label_pool, score
from commentclf.teachers.server import AnswerCache


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (the encoder the cheap teachers embed with)"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    setfit_dir: Path = typer.Option(..., help="SetFit model (a teacher when label.teachers lists it)"),
    llm_dir: Path = typer.Option(..., help="LoRA adapter of the LLM (a teacher when label.teachers lists it)"),
    teachers_out: Path = typer.Option(..., help="the cheap teachers refitted on the whole seed (joblib)"),
    ensemble_out: Path = typer.Option(..., help="the fitted ensemble (JSON model file)"),
    out: Path = typer.Option(..., help="pseudo-labelled pool rows (parquet)"),
    recipe_out: Path = typer.Option(..., help="how the student learns from them (JSON; label.recipe)"),
    seed_oof: Path = typer.Option(..., help="the seed rows' out-of-fold probabilities (parquet; suggest's review)"),
    server_cache: Path = typer.Option(..., help="the llm_server teacher's answers (SQLite, kept across runs)"),
    metrics: Path = typer.Option(..., help="teachers side by side, weights, pool class mix (JSON)"),
) -> None:
    cfg = load_params(params)
    seed_everything(cfg.seed)
    start = time.perf_counter()
    splits = (read_split(split_dir, name) for name in ("train", "dev", "pool"))
    rows = LabellingRows.from_splits(*splits, cfg)
    AnswerCache(server_cache).close()  # a DVC output kept across runs: it exists, empty, when no server teaches
    scores = score(rows, cfg, read_manifest(assets)["encoder"], setfit_dir, llm_dir, server_cache)
    labelled = label_pool(rows, scores, cfg)
    labelled.ensemble.save(ensemble_out)
    save_teachers(labelled.cheap_teachers, teachers_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    labelled.pseudo.write_parquet(out)
    labelled.recipe.save(recipe_out)
    labelled.seed_oof.write_parquet(seed_oof)
    result = {**labelled.report, "seconds": round(time.perf_counter() - start, 1)}
    if cfg.label.gold:
        truth, _ = load_labeled(cfg.label.gold, cfg.data, cfg.label_names)
        accuracy = pseudo_label_accuracy(
            labelled.pseudo, truth, cfg.label_names, cfg.minority_label, cfg.label.teachers
        )
        result["pseudo_label_accuracy"] = accuracy
    write_json(metrics, result)
    console = Console()
    console.print({k: result[k] for k in ("weights", "rows_labelled", "rows_kept", "class_mix")})
    console.print({"recipe": result["recipe"]["chosen"]})
    console.print({name: round(r["macro_f1"], 3) for name, r in result["out_of_fold"].items()})
    if "llm_server" in result:
        console.print({"llm_server": result["llm_server"]})
    if cfg.label.gold:
        console.print({n: r and round(r["accuracy"], 3) for n, r in accuracy["all_rows"].items()})


if __name__ == "__main__":
    run(main)
