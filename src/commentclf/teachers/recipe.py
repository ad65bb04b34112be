"""The distillation recipe, chosen by one rule from the seed's rows alone (docs/design.md, "One recipe").

How the teachers' distributions over the pool become the student's targets (the prior correction of the
ensemble, hard or soft targets, their sharpening, a confidence floor, and the share of the loss the seed's
own gold labels carry) decides whether the student improves on its teachers or copies them, and the best
choice differs from one dataset to the next. So that no profile hand-sets it, `choose_recipe` replays the
distillation on the labelled seed: in each replay one part of the seed is gold, cheap teachers fitted on
that part alone label a larger part (the stand-in pool, its labels hidden), a proxy student (standardised
frozen e5 embeddings + logistic regression, the `head` student) learns from the gold part and the stand-in
pool's targets under every candidate recipe, and it is scored on a fifth part that no teacher, ensemble or
proxy saw. The candidate of best mean macro-F1 over the replays wins; candidates are listed simplest first,
and a tie keeps the earlier one.

Limits, stated in the report: the replays use the cheap teachers only (SetFit and the LLM are trained once,
on the train split), their teachers see a fifth of the seed where the real ones see all of it, and the proxy
is the frozen-embedding student, not the fine-tuned one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from commentclf.config import Params
from commentclf.errors import DataError
from commentclf.teachers.cheap import CHEAP_TEACHERS, fit_cheap_teacher, full_proba, teacher_input
from commentclf.teachers.ensemble import Ensemble

PRIOR_CORRECTIONS = ("none", "nll", "macro_f1")
TARGETS = (("hard", 1.0, 0.0), ("hard", 1.0, 0.5), ("soft", 1.0, 0.0), ("soft", 0.5, 0.0), ("soft", 0.25, 0.0))
"""(target, temperature, floor): hard labels from every row or from rows of confidence >= 0.5; soft targets
as the ensemble gives them or sharpened (p ** (1/T), renormalised)."""
SEED_SHARES = (None, 0.5)
"""None: every row weighs the same (the seed's share of the loss is its share of the rows); 0.5: the gold
rows together carry half of the loss, however many pseudo-labelled rows there are."""
FOLDS, REPEATS = 5, 2
"""Each replay: one fold is gold, three are the stand-in pool, one is scored; five rotations, two shuffles."""


@dataclass(frozen=True)
class Recipe:
    """How the student learns from the pool: what the `llm_label` stage chose (or the params, when fixed)."""

    prior_correction: str
    target: str
    """`hard`: the ensemble's argmax; `soft`: its distribution, sharpened by `temperature`."""
    temperature: float
    floor: float
    """Pool rows of ensemble confidence below this are left out."""
    seed_share: float | None
    """The share of the loss carried by the gold rows; None: a row is a row."""

    @classmethod
    def fixed(cls, cfg: Params) -> Recipe:
        """`label.recipe: fixed`: the recipe the params spell out (hard rows also pass label.confidence_floor)."""
        s = cfg.student
        floor = s.pseudo_floor if s.pseudo_target == "soft" else max(s.pseudo_floor, cfg.label.confidence_floor)
        temperature = s.soft_temperature if s.pseudo_target == "soft" else 1.0
        return cls(cfg.label.prior_correction, s.pseudo_target, temperature, floor, s.seed_share)

    def targets(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the rows kept, their target distributions) from the ensemble's (n, k) distributions."""
        keep = p.max(1) >= self.floor
        q = p[keep]
        if self.target == "hard":
            return keep, np.eye(p.shape[1])[q.argmax(1)]
        powered = np.power(q, 1.0 / self.temperature)
        return keep, powered / powered.sum(1, keepdims=True)

    def row_weights(self, n_gold: int, n_pseudo: int) -> tuple[float, float]:
        """(weight of a gold row, weight of a pseudo-labelled row), their mean over all rows 1."""
        if self.seed_share is None or n_gold == 0 or n_pseudo == 0:
            return 1.0, 1.0
        n = n_gold + n_pseudo
        return self.seed_share * n / n_gold, (1 - self.seed_share) * n / n_pseudo

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Recipe:
        if not path.is_file():
            raise DataError(f"{path} is missing: run the llm_label stage (it writes the recipe)")
        return cls(**json.loads(path.read_text()))


def candidates() -> list[Recipe]:
    return [
        Recipe(pc, target, t, floor, share)
        for pc, (target, t, floor), share in product(PRIOR_CORRECTIONS, TARGETS, SEED_SHARES)
    ]


@dataclass
class Replay:
    """One replay of the distillation on the seed: gold rows, a stand-in pool with the ensemble's
    distributions under each prior correction (its own labels hidden), and rows to score on."""

    gold_x: np.ndarray
    gold_y: np.ndarray
    pool_x: np.ndarray
    pool_p: dict[str, np.ndarray]
    """prior correction -> (n_pool, k) ensemble distributions."""
    eval_x: np.ndarray
    eval_y: np.ndarray
    teacher_eval: dict[str, np.ndarray]
    """prior correction -> (n_eval, k): the teachers' own answers on the scored rows, for the report."""
    index: dict[str, np.ndarray]
    """gold / pool / eval: which seed rows each part holds (tests check they never meet)."""


def build_replays(texts: list[str], emb: np.ndarray, y: np.ndarray, cfg: Params) -> list[Replay]:
    """The replays over the labelled seed rows (`texts`, their e5 embeddings, label indices)."""
    lc, k = cfg.label, len(cfg.label_names)
    names = [t for t in lc.teachers if t in CHEAP_TEACHERS] or ["logreg"]
    rarest = int(np.bincount(y, minlength=k).min())
    if rarest < FOLDS * 2:
        raise DataError(
            f"label.recipe: auto replays the distillation over {FOLDS} folds of the seed and needs >= "
            f"{FOLDS * 2} rows of every label (the rarest has {rarest}); set label.recipe: fixed"
        )
    replays = []
    for repeat in range(REPEATS):
        folds = [f for _, f in StratifiedKFold(FOLDS, shuffle=True, random_state=cfg.seed + repeat).split(emb, y)]
        for i in range(FOLDS):
            gold, scored = folds[(i + 1) % FOLDS], folds[i]
            pool = np.concatenate([folds[(i + j) % FOLDS] for j in range(2, FOLDS)])
            unlabelled = np.concatenate([pool, scored])  # the spread teacher's graph, as the real pool is
            gold_texts = [texts[j] for j in gold]
            oof, pool_raw, eval_raw = {}, {}, {}
            for name in names:
                model, oof[name] = fit_cheap_teacher(
                    name, lc, cfg.seed, k, gold_texts, emb[gold], y[gold], emb[unlabelled]
                )
                pool_raw[name] = full_proba(model, teacher_input(name, [texts[j] for j in pool], emb[pool]), k)
                eval_raw[name] = full_proba(model, teacher_input(name, [texts[j] for j in scored], emb[scored]), k)
            pool_p, teacher_eval = {}, {}
            for pc in PRIOR_CORRECTIONS:
                ensemble = Ensemble.fit(oof, y[gold], cfg.label_names, lc.model_copy(update={"prior_correction": pc}))
                pool_p[pc], teacher_eval[pc] = ensemble.predict_proba(pool_raw), ensemble.predict_proba(eval_raw)
            index = {"gold": gold, "pool": pool, "eval": scored}
            replays.append(Replay(emb[gold], y[gold], emb[pool], pool_p, emb[scored], y[scored], teacher_eval, index))
    return replays


def proxy_student(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, c: float, seed: int):
    """Logistic regression on soft targets: each row is repeated once per label it gives mass to, weighted
    by that mass, its row weight and the label's balanced class weight (as the fine-tuned student's loss)."""
    k = targets.shape[1]
    class_w = len(targets) / (k * np.maximum(targets.sum(0), 1e-6))
    rows, labels = np.nonzero(targets > 0)
    w = targets[rows, labels] * weights[rows] * class_w[labels]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    return model.fit(x[rows], labels, logisticregression__sample_weight=w)


def score_recipe(recipe: Recipe, replay: Replay, k: int, c: float, seed: int) -> float:
    """Macro-F1 on the replay's scored rows of a proxy student trained under `recipe`."""
    keep, pool_targets = recipe.targets(replay.pool_p[recipe.prior_correction])
    w_gold, w_pool = recipe.row_weights(len(replay.gold_y), int(keep.sum()))
    x = np.vstack([replay.gold_x, replay.pool_x[keep]])
    targets = np.vstack([np.eye(k)[replay.gold_y], pool_targets])
    weights = np.concatenate([np.full(len(replay.gold_y), w_gold), np.full(int(keep.sum()), w_pool)])
    pred = proxy_student(x, targets, weights, c, seed).predict(replay.eval_x)
    return float(f1_score(replay.eval_y, pred, labels=range(k), average="macro", zero_division=0))


def choose_recipe(replays: list[Replay], cfg: Params) -> tuple[Recipe, dict]:
    """The candidate of best mean macro-F1 over the replays, and the report: every candidate's mean and
    standard error, the gold-only proxy and the teachers' ensemble on the same scored rows."""
    k, c, seed = len(cfg.label_names), cfg.label.logreg_c, cfg.seed
    table = []
    for recipe in candidates():
        scores = [score_recipe(recipe, r, k, c, seed) for r in replays]
        table.append(
            {**asdict(recipe), "macro_f1": float(np.mean(scores)), "se": float(np.std(scores) / len(scores) ** 0.5)}
        )
    best = max(range(len(table)), key=lambda i: (table[i]["macro_f1"], -i))  # a tie keeps the simpler one

    def mean_f1(predict) -> float:
        return float(
            np.mean(
                [f1_score(r.eval_y, predict(r), labels=range(k), average="macro", zero_division=0) for r in replays]
            )
        )

    gold_only = mean_f1(
        lambda r: proxy_student(r.gold_x, np.eye(k)[r.gold_y], np.ones(len(r.gold_y)), c, seed).predict(r.eval_x)
    )
    chosen = candidates()[best]
    teachers = mean_f1(lambda r: r.teacher_eval[chosen.prior_correction].argmax(1))
    report = {
        "chosen": asdict(chosen),
        "replays": len(replays),
        "rows": {"gold": len(replays[0].gold_y), "pool": len(replays[0].pool_x), "eval": len(replays[0].eval_y)},
        "teachers": [t for t in cfg.label.teachers if t in CHEAP_TEACHERS] or ["logreg"],
        "reference": {"gold_only_proxy": gold_only, "teachers_ensemble": teachers},
        "candidates": table,
    }
    return chosen, report
