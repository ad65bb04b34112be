"""Does the annotation loop beat random labelling? A simulated annotator on a labelled dataset.

    python scripts/annotation_sim.py --seed-file ../shared/datasets/ruw/seed.csv \
        --pool ../shared/datasets/ruw/pool-rest.csv --oracle ../shared/datasets/ruw/labeled.csv \
        --eval ../shared/datasets/ruw/eval.csv --profile profiles/ruw.yaml --out reports/ruw

Per seed, the starting labels are the train share of seed.csv (a stratified split, as the pipeline makes);
then `--rounds` rounds: the current model (frozen e5 embeddings + class-balanced logistic regression, the
pipeline's `seed_only` logreg) scores the unlabelled pool, a strategy picks `--batch` comments
(`commentclf.annotation.suggest`, the `suggest` stage's code), the oracle labels them, the model is
retrained and scored on the eval file (never a candidate). After the last round SetFit (the pipeline's
`setfit` stage: `setfit.*` params, head C chosen on the seed's dev share) is trained on the same labels, for
`random` and the strategy with the best logreg minority-F1 gain (`--setfit best`; `all`: every strategy, two
and a half times the trainings; `none`). Before the first round and before the last, the `suggest` forecast
(commentclf.annotation.forecast, `suggest.forecast.*`) of what the coming labels are worth is made on the labels
so far and checked against the gain the eval file then measures. Writes annotation.json (curves, the share of
the minority label among the suggested comments, `gain_vs_random` at the last round, for logreg and SetFit,
`forecast_hit_rate` and `forecast_mean_width`),
annotation_curve.csv (for `dvc plots`) and annotation_curve.png. `--picks-out DIR` also writes each run's
chosen comments with the oracle's labels (`<strategy>_seed<k>.csv`), e.g. to run the whole pipeline on the seed
plus those labels; keep DIR outside the repository when the data must stay out of it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import typer
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from commentclf.annotation.forecast import forecast
from commentclf.annotation.suggest import SuggestInput, suggest
from commentclf.assets.encoders import load_embedder
from commentclf.assets.manifest import read_manifest
from commentclf.config import parse_params
from commentclf.data import normalize_text
from commentclf.profiles import load_profile, merge
from commentclf.seeding import seed_everything
from commentclf.teachers.setfit import setfit_proba, train_setfit

STRATEGIES = ["random", "margin", "minority", "diverse", "mixed"]


def main(
    seed_file: Path = typer.Option(...),
    pool: Path = typer.Option(..., help="unlabelled candidates (text)"),
    oracle: Path = typer.Option(..., help="labels of the pool texts (text,label): the simulated annotator"),
    eval_file: Path = typer.Option(..., "--eval", help="scored after every round; never a candidate"),
    profile: Path = typer.Option(None, help="profile merged into params.yaml (labels, suggest.*)"),
    params: Path = typer.Option(Path("params.yaml")),
    assets: Path = typer.Option(Path("models/base"), help="base models folder: the e5 encoder"),
    out: Path = typer.Option(..., help="folder of annotation.json / _curve.csv / _curve.png"),
    rounds: int = typer.Option(3),
    batch: int = typer.Option(100),
    seeds: list[int] = typer.Option([0, 1, 2]),
    setfit: str = typer.Option("best", help="SetFit after the last round: none | best (and random) | all"),
    picks_out: Path = typer.Option(None, help="folder for each run's chosen comments and oracle labels (CSV)"),
) -> None:
    if setfit not in ("none", "best", "all"):
        raise typer.BadParameter(f"{setfit!r}: expected none, best or all", param_hint="--setfit")
    raw = yaml.safe_load(params.read_text())
    cfg = parse_params(merge(raw, load_profile(profile)) if profile else raw)
    labels, minority = cfg.label_names, cfg.label_names.index(cfg.minority_label)
    seed_df = pl.read_csv(seed_file, infer_schema=False)
    eval_df = pl.read_csv(eval_file, infer_schema=False)
    gold = {normalize_text(t): lab for t, lab in pl.read_csv(oracle, infer_schema=False).iter_rows()}
    held_out = {normalize_text(t) for t in eval_df["text"]} | {normalize_text(t) for t in seed_df["text"]}
    pool_texts = [t for t in pl.read_csv(pool, infer_schema=False)["text"] if normalize_text(t) not in held_out]
    pool_y = np.array([labels.index(gold[normalize_text(t)]) for t in pool_texts])

    start = time.perf_counter()
    embed = load_embedder(read_manifest(assets)["encoder"], prefix=cfg.student.prefix)
    seed_x, pool_x, eval_x = embed(seed_df["text"].to_list()), embed(pool_texts), embed(eval_df["text"].to_list())
    embed_seconds = time.perf_counter() - start
    seed_y = np.array([labels.index(v) for v in seed_df["label"]])
    eval_y = np.array([labels.index(v) for v in eval_df["label"]])

    def fit(x, y, seed):
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed).fit(x, y)

    def score(model) -> dict:
        return score_pred(model.predict(eval_x))

    def score_pred(pred) -> dict:
        return {
            "macro_f1": float(f1_score(eval_y, pred, average="macro")),
            "minority_f1": float(f1_score(eval_y, pred, labels=[minority], average="macro")),
        }

    runs = []
    labelled_sets = {}  # (strategy, seed) -> (seed train rows, seed dev rows, chosen pool rows)
    for seed in seeds:
        train_idx, dev_idx = train_test_split(
            np.arange(len(seed_y)), test_size=cfg.split.dev_frac, stratify=seed_y, random_state=seed
        )
        for strategy in STRATEGIES:
            s = cfg.suggest.model_copy(update={"strategy": strategy, "batch_size": batch})
            x, y = seed_x[train_idx], seed_y[train_idx]
            left = np.arange(len(pool_texts))
            model = fit(x, y, seed)
            curve = [{"labels_added": 0, **score(model)}]
            picked_minority, picked = 0, []
            # what suggest would print before the first round (+all rounds) and before the last (+one batch)
            checks = [(0, batch * rounds), (rounds - 1, batch)]
            forecasts = []
            for r in range(rounds):
                for at, added in checks:
                    if r == at:
                        one = cfg.suggest.forecast.model_copy(update={"added": [added]})
                        made = forecast(x, y, minority, one, seed)
                        forecasts.append({"made_at": batch * at, "added": added, "forecast": made})
                data = SuggestInput(model.predict_proba(pool_x[left]), pool_x[left], x[y == minority])
                picks, _ = suggest(data, s, seed * 100 + r)
                chosen = left[picks]
                picked.append(chosen)
                picked_minority += int((pool_y[chosen] == minority).sum())
                x, y = np.vstack([x, pool_x[chosen]]), np.concatenate([y, pool_y[chosen]])
                left = np.setdiff1d(left, chosen)
                model = fit(x, y, seed)
                curve.append({"labels_added": batch * (r + 1), **score(model)})
            runs.append(
                {
                    "seed": seed,
                    "strategy": strategy,
                    "curve": curve,
                    "minority_share": picked_minority / (batch * rounds),
                    "forecasts": [forecast_check(f, curve, batch) for f in forecasts],
                }
            )
            labelled_sets[strategy, seed] = (train_idx, dev_idx, np.concatenate(picked))
            print(strategy, seed, curve[-1], flush=True)

    summary = {}
    for strategy in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == strategy]
        summary[strategy] = {
            "labels_added": [p["labels_added"] for p in mine[0]["curve"]],
            **{
                f"{m}_{stat}": [float(f([r["curve"][i][m] for r in mine])) for i in range(rounds + 1)]
                for m in ("macro_f1", "minority_f1")
                for stat, f in (("mean", np.mean), ("std", np.std))
            },
            "minority_share_of_suggested": float(np.mean([r["minority_share"] for r in mine])),
        }
    last = {
        k: {m: v[f"{m}_mean"][-1] - summary["random"][f"{m}_mean"][-1] for m in ("macro_f1", "minority_f1")}
        for k, v in summary.items()
        if k != "random"
    }
    best = max(last, key=lambda k: last[k]["minority_f1"])

    if picks_out:
        picks_out.mkdir(parents=True, exist_ok=True)
        for (strategy, seed), (_, _, chosen) in labelled_sets.items():
            rows = {"text": [pool_texts[i] for i in chosen], "label": [labels[i] for i in pool_y[chosen]]}
            pl.DataFrame(rows).write_csv(picks_out / f"{strategy}_seed{seed}.csv")

    # SetFit on the final labels: does the strategy's gain survive a stronger model than the loop's own?
    setfit_strategies = {"none": [], "best": ["random", best], "all": STRATEGIES}[setfit]
    body = cfg.setfit.body or read_manifest(assets)["encoder"]
    seed_texts, seed_labels = seed_df["text"].to_list(), seed_df["label"].to_list()
    for run in runs:
        if run["strategy"] not in setfit_strategies:
            continue
        train_idx, dev_idx, chosen = labelled_sets[run["strategy"], run["seed"]]
        seed_everything(run["seed"])
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            model, _, _ = train_setfit(
                body,
                [seed_texts[i] for i in train_idx] + [pool_texts[i] for i in chosen],
                [seed_labels[i] for i in train_idx] + [labels[i] for i in pool_y[chosen]],
                [seed_texts[i] for i in dev_idx],
                [seed_labels[i] for i in dev_idx],
                labels,
                cfg.minority_label,
                cfg.setfit,
                run["seed"],
                Path(tmp),
            )
        pred = setfit_proba(model, eval_df["text"].to_list(), cfg.setfit.prefix).argmax(1)
        run["setfit"] = {**score_pred(pred), "seconds": round(time.perf_counter() - start, 1)}
        print("setfit", run["strategy"], run["seed"], run["setfit"], flush=True)
    for strategy in setfit_strategies:
        mine = [r["setfit"] for r in runs if r["strategy"] == strategy]
        summary[strategy]["setfit_at_last_round"] = {
            f"{m}_{stat}": float(f([r[m] for r in mine]))
            for m in ("macro_f1", "minority_f1")
            for stat, f in (("mean", np.mean), ("std", np.std))
        }
    setfit_gain = {
        k: {
            m: summary[k]["setfit_at_last_round"][f"{m}_mean"] - summary["random"]["setfit_at_last_round"][f"{m}_mean"]
            for m in ("macro_f1", "minority_f1")
        }
        for k in setfit_strategies
        if k != "random"
    }

    report = {
        "what": "simulated annotation loop: frozen e5 + balanced logistic regression retrained after each round; "
        "SetFit on the final labels",
        "seed_file": str(seed_file),
        "pool": str(pool),
        "eval": str(eval_file),
        "pool_candidates": len(pool_texts),
        "eval_rows": len(eval_y),
        "rounds": rounds,
        "batch": batch,
        "seeds": seeds,
        "mixed_shares": cfg.suggest.shares,
        "embed_seconds": round(embed_seconds, 1),
        "pool_minority_share": float(np.mean(pool_y == minority)),
        "strategies": summary,
        # the strategy with the largest minority-F1 gain at the last round (a report, not a tuned choice)
        "gain_vs_random": {
            "labels_added": batch * rounds,
            "best": best,
            **last[best],
            "all": last,
            # SetFit trained once per seed on the final labels of random and of these strategies
            "setfit": setfit_gain,
        },
        "setfit_params": cfg.setfit.model_dump(),
        # the forecast made before the last round (+one batch), checked against the gain that round brought;
        # and the one made on the seed alone (+every round)
        **forecast_summary(runs, batch, rounds, cfg.suggest.forecast.level),
        "forecast_params": cfg.suggest.forecast.model_dump(),
        "runs": runs,
    }
    write_outputs(report, cfg.minority_label, out)


def forecast_check(made: dict, curve: list[dict], batch: int) -> dict:
    """The forecast's interval beside the gain the eval set measured over the same labels."""
    start = curve[made["made_at"] // batch]
    end = curve[(made["made_at"] + made["added"]) // batch]
    out = {"made_at": made["made_at"], "added": made["added"]}
    for metric, by_added in made["forecast"].gains.items():
        gain, low, high = by_added[made["added"]]
        measured = end[metric] - start[metric]
        out[metric] = {"gain": gain, "low": low, "high": high, "measured": measured, "hit": low <= measured <= high}
    return out


def forecast_summary(runs: list[dict], batch: int, rounds: int, level: float) -> dict:
    """Hit rate and mean interval width, over every strategy, seed and metric, of each forecast checkpoint."""

    def summary(made_at: int) -> dict:
        made = [c for r in runs for c in r["forecasts"] if c["made_at"] == made_at]
        checks = [c[m] for c in made for m in ("macro_f1", "minority_f1")]
        by_metric = {m: float(np.mean([c[m]["hit"] for c in made])) for m in ("macro_f1", "minority_f1")}
        return {
            "checks": len(checks),
            "hit_rate": float(np.mean([c["hit"] for c in checks])),
            "hit_rate_by_metric": by_metric,
            "mean_width": float(np.mean([c["high"] - c["low"] for c in checks])),
            "mean_abs_error": float(np.mean([abs(c["gain"] - c["measured"]) for c in checks])),
        }

    last = summary(batch * (rounds - 1))
    return {
        "forecast_level": level,
        "forecast_hit_rate": last["hit_rate"],
        "forecast_mean_width": last["mean_width"],
        "forecast": {"before_last_round": last, "from_seed_all_rounds": summary(0)},
    }


def write_outputs(report: dict, minority: str, out: Path) -> None:
    summary = report["strategies"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotation.json").write_text(json.dumps(report, indent=2) + "\n")
    # wide, one line per strategy and metric: what dvc.yaml's `plots` section draws
    curve = {"labels_added": summary["random"]["labels_added"]}
    curve |= {f"{k}_{m}": v[f"{m}_mean"] for k, v in summary.items() for m in ("macro_f1", "minority_f1")}
    pl.DataFrame(curve).write_csv(out / "annotation_curve.csv")
    plot(summary, minority, out / "annotation_curve.png")


def plot(summary: dict, minority: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in ((axes[0], "macro_f1", "macro-F1"), (axes[1], "minority_f1", f"{minority} F1")):
        for name, v in summary.items():
            mean, std = np.array(v[f"{metric}_mean"]), np.array(v[f"{metric}_std"])
            line = ax.plot(v["labels_added"], mean, marker="o", label=name, linestyle="--" if name == "random" else "-")
            ax.fill_between(v["labels_added"], mean - std, mean + std, alpha=0.15)
            if "setfit_at_last_round" in v:  # a star: SetFit on the same final labels
                star = v["setfit_at_last_round"][f"{metric}_mean"]
                ax.plot([v["labels_added"][-1]], [star], marker="*", markersize=14, color=line[0].get_color())
        ax.set_xlabel("labels added to the seed")
        ax.set_title(f"{title} on the eval set (star: SetFit)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    typer.run(main)
