"""Stage `llm_label`: the SetFit + LLM ensemble labels up to `label.max_pool` pool comments (distillation
data for the student). The ensemble (each model's calibration, the rule, the soft weight) is fitted on
dev and saved as a model; dev metrics of each model alone and of both rules are reported side by side.
Output rows: id, text, label, confidence, setfit_label, llm_label, kept, and proba_<label> for every label
(the ensemble's distribution)."""

import time
from pathlib import Path

import numpy as np
import polars as pl
import typer
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import load_labeled, read_split
from commentclf.ensemble import Ensemble, gate, pseudo_label_accuracy, soft
from commentclf.files import write_json
from commentclf.llm.classifier import LLMClassifier
from commentclf.metrics import classification_report
from commentclf.seeding import seed_everything
from commentclf.setfit_model import load_setfit, setfit_proba
from commentclf.stage import run


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    setfit_dir: Path = typer.Option(..., help="SetFit model"),
    llm_dir: Path = typer.Option(..., help="LoRA adapter of the LLM classifier"),
    ensemble_out: Path = typer.Option(..., help="the fitted ensemble (JSON model file)"),
    out: Path = typer.Option(..., help="pseudo-labelled pool rows (parquet)"),
    metrics: Path = typer.Option(..., help="dev side by side, pool class mix (JSON)"),
) -> None:
    cfg = load_params(params)
    lc, labels, minority = cfg.label, cfg.label_names, cfg.minority_label
    seed_everything(cfg.seed)
    setfit = load_setfit(setfit_dir)
    llm = LLMClassifier.load(llm_dir, quantize=cfg.llm.quantize)
    bs = cfg.llm.score_batch_size  # the LLM only scores here

    def both(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return setfit_proba(setfit, texts, cfg.setfit.prefix), llm.score(texts, bs)

    # Dev: the ensemble is fitted here, never on test; every candidate is reported side by side.
    dev = read_split(split_dir, "dev")
    gold = dev["label"].to_list()
    raw_dev = both(dev["text"].to_list())
    ensemble, weight_scores = Ensemble.fit(*raw_dev, gold, labels, minority, lc)
    ensemble.save(ensemble_out)
    ps_dev, pl_dev = ensemble.calibrated(*raw_dev)
    gate_index = labels.index(lc.gate_label)
    names = lambda idx: [labels[i] for i in idx]  # noqa: E731
    dev_side_by_side = {
        "setfit": classification_report(gold, names(ps_dev.argmax(1)), labels, minority),
        "llm": classification_report(gold, names(pl_dev.argmax(1)), labels, minority),
        "gate": classification_report(gold, names(gate(ps_dev, pl_dev, gate_index)[0]), labels, minority),
        "soft": classification_report(gold, names(soft(ps_dev, pl_dev, ensemble.weight)[0]), labels, minority),
    }

    pool = read_split(split_dir, "pool").head(lc.max_pool)
    start = time.perf_counter()
    p_setfit, p_llm = ensemble.calibrated(*both(pool["text"].to_list()))
    p = ensemble.combine(p_setfit, p_llm)
    pred, conf = p.argmax(1), p.max(1)
    seconds = time.perf_counter() - start
    pseudo = pool.with_columns(
        label=pl.Series(names(pred), dtype=pl.String),
        confidence=conf.astype(float),
        setfit_label=pl.Series(names(p_setfit.argmax(1)), dtype=pl.String),
        llm_label=pl.Series(names(p_llm.argmax(1)), dtype=pl.String),
        kept=conf >= lc.confidence_floor,
        # the whole distribution, for a student trained on soft targets (student.pseudo_target: soft)
        **{f"proba_{label}": p[:, j].astype(float) for j, label in enumerate(labels)},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    pseudo.write_parquet(out)

    kept = pseudo.filter(pl.col("kept"))
    report = {
        "rule": lc.rule,
        "calibration": {"method": lc.calibrate, **ensemble.calibration},
        "soft_weight": ensemble.weight,
        "soft_weight_dev": weight_scores,
        "select_on": lc.select_on,
        "rows_labelled": len(pseudo),
        "rows_kept": len(kept),
        "confidence_floor": lc.confidence_floor,
        "class_mix_kept": {label: int((kept["label"] == label).sum()) for label in labels},
        "setfit_llm_agreement": float(np.mean(p_setfit.argmax(1) == p_llm.argmax(1))) if len(pool) else None,
        "comments_per_second": len(pool) / seconds if seconds else None,
        "dev": dev_side_by_side,
    }
    if lc.gold:
        truth, _ = load_labeled(lc.gold, cfg.data, labels)
        report["pseudo_label_accuracy"] = pseudo_label_accuracy(pseudo, truth, labels, minority)
    write_json(metrics, report)
    Console().print({k: report[k] for k in ("rule", "soft_weight", "rows_labelled", "rows_kept", "class_mix_kept")})
    Console().print({name: round(r["macro_f1"], 3) for name, r in dev_side_by_side.items()})


if __name__ == "__main__":
    run(main)
