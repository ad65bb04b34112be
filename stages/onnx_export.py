"""Stage `onnx_export`: optimum export of the student -> ORT graph optimisation -> int8.

Parity against the torch student is measured on dev + `onnx.parity_pool_rows` pool texts (agreement needs
no labels) and written to metrics/onnx.json with the file sizes. The stage fails with a clear message when
fp32 or int8 agreement is under its bound."""

import shutil
from pathlib import Path

from rich.console import Console

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.metrics import write_json
from commentclf.onnx_export import (
    OnnxClassifier,
    ParityError,
    export_fp32,
    file_mb,
    optimize,
    parity,
    quantize,
)
from commentclf.stage import run
from commentclf.student import load_student, predict_proba


def main(
    params: Path = Path("params.yaml"),
    student_dir: Path = Path("models/student"),
    out_dir: Path = Path("models/onnx"),
    metrics: Path = Path("metrics/onnx.json"),
) -> None:
    cfg = load_params(params)
    o, s = cfg.onnx, cfg.student
    model, tokenizer = load_student(student_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    fp32 = export_fp32(model, tokenizer, out_dir / "fp32", o.opset)
    optimized = optimize(out_dir / "fp32", out_dir / "optimized", o.optimization_level)
    int8, isa = quantize(
        out_dir / "optimized",
        optimized.name,
        out_dir / "int8",
        o.per_channel,
        o.operators,
        o.isa,
        o.scheme,
        o.block_size,
    )
    for folder in ("optimized", "int8"):  # each folder is loadable on its own (tokenizer + config)
        tokenizer.save_pretrained(out_dir / folder)

    dev = read_split("dev").text.tolist()
    pool = read_split("pool").text.head(o.parity_pool_rows).tolist()
    texts = dev + pool
    ref = predict_proba(model, tokenizer, texts, s.prefix, s.max_length)
    results = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        p = OnnxClassifier(path, max_length=s.max_length, prefix=s.prefix).predict_proba(texts)
        results[name] = {
            **parity(ref, p),
            "dev_argmax_agreement": parity(ref[: len(dev)], p[: len(dev)])["argmax_agreement"],
        }
    torch_mb = file_mb(student_dir / "model.safetensors")
    report = {
        "scheme": o.scheme,
        "isa": isa,
        "optimization_level": o.optimization_level,
        "operators": o.operators,
        "parity_rows": {"dev": len(dev), "pool": len(pool)},
        "fp32_vs_torch": results["fp32"],
        "int8_vs_torch": results["int8"],
        "size_mb": {
            "torch_fp32": torch_mb,
            "onnx_fp32": file_mb(fp32),
            "onnx_optimized": file_mb(optimized),
            "onnx_int8": file_mb(int8),
        },
        "int8_shrink_vs_torch": round(torch_mb / file_mb(int8), 2),
    }
    write_json(metrics, report)
    Console().print(report)
    if results["fp32"]["argmax_agreement"] < o.min_fp32_agreement:
        raise ParityError(
            f"fp32 ONNX agrees with torch on {results['fp32']['argmax_agreement']:.2%} of "
            f"{len(texts)} texts, below onnx.min_fp32_agreement={o.min_fp32_agreement:.0%}"
        )
    if results["int8"]["argmax_agreement"] < o.min_int8_agreement:
        raise ParityError(
            f"int8 ONNX agrees with torch on {results['int8']['argmax_agreement']:.2%} of "
            f"{len(texts)} texts, below onnx.min_int8_agreement={o.min_int8_agreement:.0%}"
        )


if __name__ == "__main__":
    run(main)
