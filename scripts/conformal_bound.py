"""How often a perfect class-conditional conformal predictor lands each class's test coverage in a band.

Split conformal with n calibration rows of a class, unsmoothed (as commentclf.conformal), gives that class a
coverage that depends on which rows were drawn: conditional on them it follows Beta(n + 1 - l, l), with
l = floor((n + 1) * alpha) (Vovk 2012; Angelopoulos & Bates 2021, sec. 3.2). A test split then measures it with
binomial noise over the class's m test rows. This script draws both, for the calib and test counts of a run's
`data.json`, and says how often every class lands inside the band: the bound that no model can beat with that
many calibration rows. The calibration rows are also scaled up, to show what more of them would buy.

    python scripts/conformal_bound.py --data reports/ruw/data.json --out reports/measurements/conformal_bound.json
"""

import json
from pathlib import Path

import numpy as np
import typer


def main(
    data: Path = typer.Option(..., help="a run's data.json (its split's calib and test counts per class)"),
    out: Path = typer.Option(..., help="where to write the result (JSON)"),
    alpha: float = typer.Option(0.1, help="the miscoverage level"),
    low: float = typer.Option(0.85, help="the band's lower end"),
    high: float = typer.Option(0.95, help="the band's upper end"),
    draws: int = typer.Option(200_000, help="simulated calibration-and-test draws"),
    seed: int = typer.Option(0),
) -> None:
    split = json.loads(data.read_text())["split"]
    labels = [k for k in split["calib"] if k != "rows"]
    rng = np.random.default_rng(seed)

    def in_band(n: int, m: int) -> tuple[float, float]:
        n_out = int(np.floor((n + 1) * alpha))
        coverage = rng.beta(n + 1 - n_out, n_out, draws)
        measured = rng.binomial(m, coverage) / m
        return float(coverage.mean()), float(((measured >= low) & (measured <= high)).mean())

    scales = {}
    for scale in (1, 2, 3):
        classes = {}
        for label in labels:
            n, m = int(split["calib"][label] * scale), int(split["test"][label])
            mean, p = in_band(n, m)
            classes[label] = {"calib_rows": n, "test_rows": m, "expected_coverage": mean, "p_in_band": p}
        scales[f"x{scale}"] = {
            "classes": classes,
            "p_every_class_in_band": float(np.prod([c["p_in_band"] for c in classes.values()])),
        }
    result = {
        "what": "probability that an exact, unsmoothed Mondrian split-conformal predictor puts every class's "
        f"measured test coverage in [{low}, {high}] at alpha {alpha}, given the run's calib and test rows per "
        "class (x1) and with 2 and 3 times the calib rows; Monte Carlo over the Beta law of conditional coverage "
        "and the binomial noise of the test split",
        "data": str(data),
        "alpha": alpha,
        "band": [low, high],
        "draws": draws,
        "seed": seed,
        "scales": scales,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v["p_every_class_in_band"] for k, v in scales.items()}))


if __name__ == "__main__":
    typer.run(main)
