"""Stage `setfit`: the few-shot baseline. A sentence-transformer body fine-tuned contrastively on train
pairs + a class-balanced logistic head whose C is chosen on dev. Saves models/setfit/ and
metrics/setfit.json (dev accuracy, macro-F1, per-class F1).

(This file is not called setfit.py: as the script's own folder comes first on sys.path, that name
would shadow the setfit package.)"""

import time
from pathlib import Path

from rich.console import Console

from commentclf.assets import read_manifest
from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.metrics import write_json
from commentclf.seeding import seed_everything
from commentclf.setfit_model import train_setfit
from commentclf.stage import run


def main(
    params: Path = Path("params.yaml"),
    out_dir: Path = Path("models/setfit"),
    metrics: Path = Path("metrics/setfit.json"),
) -> None:
    cfg = load_params(params)
    s = cfg.setfit
    seed_everything(cfg.seed)
    train, dev = read_split("train"), read_split("dev")
    body = s.body or read_manifest()["encoder"]
    start = time.perf_counter()
    _, report = train_setfit(
        body,
        train.text.tolist(),
        train.label.tolist(),
        dev.text.tolist(),
        dev.label.tolist(),
        cfg.label_names,
        cfg.minority_label,
        prefix=s.prefix,
        max_steps=s.max_steps,
        batch_size=s.batch_size,
        body_lr=s.body_lr,
        head_c=s.head_c,
        max_length=s.max_length,
        seed=cfg.seed,
        out_dir=out_dir,
        freeze_embeddings=s.freeze_embeddings,
    )
    report = {
        "dev": report,
        "train_rows": len(train),
        "train_seconds": round(time.perf_counter() - start, 1),
        "body": body,
    }
    write_json(metrics, report)
    Console().print(
        f"setfit dev macro-F1 {report['dev']['macro_f1']:.3f}, "
        f"{cfg.minority_label} F1 {report['dev']['minority_f1']:.3f} (n={report['dev']['n']})"
    )


if __name__ == "__main__":
    run(main)
