"""Stage `llm_label`: the SetFit + LLM ensemble labels up to `label.max_pool` pool comments (distillation
data for the student). Both rules are evaluated on dev side by side with each model alone; the soft
rule's weight is chosen on dev. Output data/pseudo.parquet (id, text, label, confidence, setfit_label,
llm_label, kept, and proba_<label> for every label: the ensemble's distribution) and metrics/label.json."""

import time
from pathlib import Path

import numpy as np
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import DataError, load_labeled, read_split
from commentclf.ensemble import (
    apply_calibration,
    choose_weight,
    fit_calibration,
    gate,
    gate_proba,
    pseudo_label_accuracy,
    soft,
    soft_proba,
)
from commentclf.llm import LLMClassifier
from commentclf.metrics import classification_report, write_json
from commentclf.seeding import seed_everything
from commentclf.setfit_model import load_setfit, setfit_proba
from commentclf.stage import run


def main(
    params: Path = Path("params.yaml"),
    out: Path = Path("data/pseudo.parquet"),
    metrics: Path = Path("metrics/label.json"),
) -> None:
    cfg = load_params(params)
    if cfg.label is None:
        raise DataError("params.yaml has no `label` section (label.gate_label is required)")
    lc, labels, minority = cfg.label, cfg.label_names, cfg.minority_label
    seed_everything(cfg.seed)
    setfit = load_setfit("models/setfit")
    llm = LLMClassifier.load("models/llm", quantize=cfg.llm.quantize)
    bs = cfg.llm.score_batch_size  # the LLM only scores here

    # Dev: every candidate side by side; the soft weight is picked here, never on test.
    dev = read_split("dev")
    gold = dev.label.tolist()
    ps_dev, pl_dev = setfit_proba(setfit, dev.text.tolist(), cfg.setfit.prefix), llm.score(dev.text.tolist(), bs)
    gold_index = np.array([labels.index(g) for g in gold])
    calib = {
        "setfit": fit_calibration(ps_dev, gold_index, lc.calibrate),
        "llm": fit_calibration(pl_dev, gold_index, lc.calibrate),
    }
    ps_dev, pl_dev = apply_calibration(ps_dev, calib["setfit"]), apply_calibration(pl_dev, calib["llm"])
    weight, weight_scores = choose_weight(ps_dev, pl_dev, gold, labels, minority, lc.soft_weights, lc.select_on)
    gate_index = labels.index(lc.gate_label)
    names = lambda idx: [labels[i] for i in idx]  # noqa: E731
    dev_side_by_side = {
        "setfit": classification_report(gold, names(ps_dev.argmax(1)), labels, minority),
        "llm": classification_report(gold, names(pl_dev.argmax(1)), labels, minority),
        "gate": classification_report(gold, names(gate(ps_dev, pl_dev, gate_index)[0]), labels, minority),
        "soft": classification_report(gold, names(soft(ps_dev, pl_dev, weight)[0]), labels, minority),
    }

    pool = read_split("pool").head(lc.max_pool)
    start = time.perf_counter()
    ps, pl = setfit_proba(setfit, pool.text.tolist(), cfg.setfit.prefix), llm.score(pool.text.tolist(), bs)
    ps, pl = apply_calibration(ps, calib["setfit"]), apply_calibration(pl, calib["llm"])
    p = gate_proba(ps, pl, gate_index) if lc.rule == "gate" else soft_proba(ps, pl, weight)
    pred, conf = p.argmax(1), p.max(1)
    seconds = time.perf_counter() - start
    pseudo = pool.assign(
        label=names(pred),
        confidence=conf.astype(float),
        setfit_label=names(ps.argmax(1)),
        llm_label=names(pl.argmax(1)),
        kept=conf >= lc.confidence_floor,
        # the whole distribution, for a student trained on soft targets (student.pseudo_target: soft)
        **{f"proba_{label}": p[:, j].astype(float) for j, label in enumerate(labels)},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    pseudo.to_parquet(out, index=False)

    kept = pseudo[pseudo.kept]
    report = {
        "rule": lc.rule,
        "calibration": {"method": lc.calibrate, **calib},
        "soft_weight": weight,
        "soft_weight_dev": weight_scores,
        "select_on": lc.select_on,
        "rows_labelled": len(pseudo),
        "rows_kept": len(kept),
        "confidence_floor": lc.confidence_floor,
        "class_mix_kept": {label: int((kept.label == label).sum()) for label in labels},
        "setfit_llm_agreement": float(np.mean(ps.argmax(1) == pl.argmax(1))) if len(pool) else None,
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
