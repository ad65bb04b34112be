"""Which quantification method would each seed-only choice rule pick, and how far is each method on test?

`prevalence.method: auto` picks the method with the smallest error on shifted samples of the calib rows
(commentclf.quantification.choose_method: 4 folds, class shares uniform over the simplex). This script scores a
finished run's calib, test and pool rows with its deployed student and runs that rule and variants of it (fewer
folds, so each fold keeps more distinct rows; shifts centred on the calib prior or on a pilot estimate of the
pool's), then prints every method's largest error on the test split, whose truth the rules never see.

    python scripts/prevalence_choice.py --run-dir ../some-run --out reports/measurements/prevalence_choice_ruw.json
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import typer
from sklearn.model_selection import StratifiedKFold

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.quantification import METHODS, PROTOCOL_ROWS, HeldOut, shares
from commentclf.student.onnx_model import OnnxClassifier


def errors_on_shifted_samples(
    calib: HeldOut, centre: np.ndarray | None, folds: int, samples: int, seed: int
) -> dict[str, float]:
    """Mean over samples of each method's largest share error: `folds` stratified folds of the calib rows, rates
    from the other folds, PROTOCOL_ROWS-row samples of a fold at class shares drawn uniformly over the simplex
    (centre None, as QuaPy's UPP) or from a Dirichlet of concentration 50 around `centre`."""
    rng = np.random.default_rng(seed)
    k = calib.proba.shape[1]
    errors = {m: [] for m in METHODS}
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(calib.proba, calib.y)
    for fit_rows, eval_rows in split:
        rates = replace(calib, proba=calib.proba[fit_rows], y=calib.y[fit_rows])
        proba, y = calib.proba[eval_rows], calib.y[eval_rows]
        for _ in range(samples):
            prior = rng.dirichlet(np.ones(k) if centre is None else 50 * centre)
            counts = rng.multinomial(PROTOCOL_ROWS, prior)
            rows = np.concatenate([rng.choice(np.flatnonzero(y == j), c) for j, c in enumerate(counts)])
            for m in METHODS:
                errors[m].append(float(np.abs(shares(m, rates, proba[rows]) - counts / PROTOCOL_ROWS).max()))
    return {m: float(np.mean(e)) for m, e in errors.items()}


def main(
    run_dir: Path = typer.Option(..., help="a finished run's checkout (params.yaml, data/split, models/onnx/int8)"),
    out: Path = typer.Option(..., help="where to write the result (JSON)"),
    samples: int = typer.Option(50, help="shifted samples per fold"),
    seed: int = typer.Option(0),
) -> None:
    cfg = load_params(run_dir / "params.yaml")
    clf = OnnxClassifier(run_dir / "models/onnx/int8", max_length=cfg.student.max_length, prefix=cfg.student.prefix)

    def scored(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = read_split(run_dir / "data/split", name)
        y = np.array([clf.labels.index(v) for v in rows["label"]]) if "label" in rows.columns else None
        return clf.predict_proba(rows["text"].to_list()), y

    calib = HeldOut(*scored("calib"), cfg.prevalence.recalibrate == "bcts")
    test_proba, test_y = scored("test")
    pool_proba, _ = scored("pool")
    k = len(clf.labels)
    truth = np.bincount(test_y, minlength=k) / len(test_y)
    calib_prior = np.bincount(calib.y, minlength=k) / len(calib.y)

    def centre_on(method: str) -> np.ndarray:
        estimate = np.clip(shares(method, calib, pool_proba), 0.02, None)  # a Dirichlet needs every share > 0
        return estimate / estimate.sum()

    rules = {}
    for folds in (4, 2):
        for centre_name, centre in (
            ("uniform", None),
            ("calib_prior", calib_prior),
            *((f"pool_{m}", centre_on(m)) for m in ("pcc", "emq")),
        ):
            errors = errors_on_shifted_samples(calib, centre, folds, samples, seed)
            rules[f"{centre_name}_folds{folds}"] = {"choice": min(METHODS, key=errors.get), "errors": errors}
    test_error = {m: float(np.abs(shares(m, calib, test_proba) - truth).max()) for m in METHODS}
    result = {
        "what": "each seed-only rule's choice of quantification method (mean largest share error on shifted "
        "samples of the calib rows, rates from the other folds) beside every method's largest error on the test "
        "split; uniform_folds4 is prevalence.method auto",
        "run_dir": str(run_dir),
        "calib_rows": len(calib.y),
        "test_rows": len(test_y),
        "test_truth": dict(zip(clf.labels, truth.tolist())),
        "test_max_error": test_error,
        "rules": rules,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"test_max_error": test_error, "choices": {r: v["choice"] for r, v in rules.items()}}, indent=1))


if __name__ == "__main__":
    typer.run(main)
