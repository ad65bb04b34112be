"""Stage `suggest`: the pool comments worth labelling next, as Label Studio tasks and as a CSV.

Candidates are the pool comments the ensemble scored (`llm_label`); the split already removed every
labelled and test text from the pool, so nothing labelled, dev or test is suggested. Each task carries the
ensemble's guess as a Label Studio prediction (pre-annotation): `model_version` is the ensemble file's hash,
`score` its probability. Then: label in Label Studio (or fill the CSV's `label` column), `commentclf
annotations import FILE`, `dvc repro`.

With `suggest.review`, the labelled rows whose label the cross-fitted teachers doubt most also go out
(review.json, review.csv; commentclf.annotation.review), their given label pre-selected and the teachers' guess
beside it; `annotations import FILE --accept-corrections` applies the labels an annotator changed.

Beside the tasks it prints what the next labels are worth: the fast proxy's learning curve over the labelled
rows (train and dev), extrapolated to `suggest.forecast.added` more labels with a bootstrap interval
(commentclf.annotation.forecast)."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import typer
from rich.console import Console

from commentclf.annotation.forecast import forecast_report
from commentclf.annotation.label_studio import label_config, review_table, review_tasks, tasks, tasks_table
from commentclf.annotation.review import rank_label_issues
from commentclf.annotation.suggest import SuggestInput, margins, needs_embeddings, suggest
from commentclf.assets.encoders import load_embedder
from commentclf.assets.manifest import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.files import model_version, write_json
from commentclf.seeding import seed_everything
from commentclf.stage import run


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    assets: Path = typer.Option(..., help="base models folder (assets stage): the e5 encoder"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    pseudo: Path = typer.Option(..., help="the ensemble's pool probabilities (llm_label)"),
    seed_oof: Path = typer.Option(..., help="the seed rows' out-of-fold probabilities (llm_label)"),
    ensemble_file: Path = typer.Option(..., help="the fitted ensemble (its hash names the model version)"),
    out_dir: Path = typer.Option(..., help="tasks.json, tasks.csv and label_config.xml"),
    metrics: Path = typer.Option(..., help="what was suggested, by which strategy (JSON)"),
) -> None:
    cfg = load_params(params)
    a, labels = cfg.suggest, cfg.label_names
    seed_everything(cfg.seed)
    pool = pl.read_parquet(pseudo)
    proba = pool.select(f"proba_{label}" for label in labels).to_numpy()
    texts = pool["text"].to_list()
    seed_rows = pl.concat([read_split(split_dir, "train"), read_split(split_dir, "dev")])
    # the labelled rows' embeddings feed the forecast; the minority ones also the `minority` strategy
    embed = load_embedder(read_manifest(assets)["encoder"], prefix=cfg.student.prefix)
    labelled_x = embed(seed_rows["text"].to_list())
    labelled_y = np.array([labels.index(y) for y in seed_rows["label"]])
    minority = labels.index(cfg.minority_label)
    embeddings = embed(texts) if needs_embeddings(a) else np.zeros((len(texts), 0))
    picks, by = suggest(SuggestInput(proba, embeddings, labelled_x[labelled_y == minority]), a, cfg.seed)
    worth, worth_lines = forecast_report(labelled_x, labelled_y, minority, cfg.minority_label, a.forecast, cfg.seed)

    guesses = [labels[i] for i in proba[picks].argmax(1)]
    scores = proba[picks].max(1).tolist()
    ids = pool["id"].cast(pl.String)[picks].to_list()
    chosen = [texts[i] for i in picks]
    out_dir.mkdir(parents=True, exist_ok=True)
    version = model_version(ensemble_file)
    (out_dir / "tasks.json").write_text(
        json.dumps(tasks(ids, chosen, guesses, scores, by, version), ensure_ascii=False, indent=1) + "\n"
    )
    tasks_table(ids, chosen, guesses, scores, by).write_csv(out_dir / "tasks.csv")
    (out_dir / "label_config.xml").write_text(label_config([(x.name, x.description) for x in cfg.labels]))
    report = {
        "strategy": a.strategy,
        "candidates": len(texts),
        "suggested": len(picks),
        "by_strategy": {name: by.count(name) for name in dict.fromkeys(by)},
        # the original's point: find the rare class. Guessed share now; the true share is known once labelled.
        "guessed_minority_share": guesses.count(cfg.minority_label) / max(1, len(guesses)),
        "pool_guessed_minority_share": float(np.mean(proba.argmax(1) == labels.index(cfg.minority_label))),
        "mean_margin": float(margins(proba[picks]).mean()) if len(picks) else None,
        "pool_mean_margin": float(margins(proba).mean()) if len(texts) else None,
        "model_version": version,
        "forecast": worth,
    }
    if a.review:
        report["review"] = write_review(pl.read_parquet(seed_oof), labels, a.review, version, out_dir)
    write_json(metrics, report)
    console = Console()
    console.print(report)
    for line in worth_lines:
        console.print(line)


def write_review(seed_oof: pl.DataFrame, labels: list[str], k: int, version: str, out_dir: Path) -> dict:
    """The `k` labelled rows the teachers doubt most, as Label Studio tasks and a CSV; returns the report."""
    proba = seed_oof.select(f"proba_{label}" for label in labels).to_numpy()
    given = np.array([labels.index(y) for y in seed_oof["label"]])
    review = rank_label_issues(proba, given)
    picks = review.order[:k]
    texts = [seed_oof["text"][int(i)] for i in picks]
    given_labels = [labels[given[i]] for i in picks]
    guesses = [labels[j] for j in proba[picks].argmax(1)]
    quality = review.quality[picks].tolist()
    (out_dir / "review.json").write_text(
        json.dumps(review_tasks(texts, given_labels, guesses, quality, version), ensure_ascii=False, indent=1) + "\n"
    )
    review_table(texts, given_labels, guesses, quality).write_csv(out_dir / "review.csv")
    return {
        "rows_ranked": len(given),
        "offered": len(picks),
        "flagged_by_cleanlab": review.flagged,
        "offered_where_teachers_disagree": int(sum(g != t for g, t in zip(given_labels, guesses))),
        "by_split": {name: int((seed_oof["split"][picks] == name).sum()) for name in ("train", "dev")},
    }


if __name__ == "__main__":
    run(main)
