"""Stage `onnx_export`: optimum export of the student -> ORT graph optimisation -> int8.

The deployed int8 model (`onnx.scheme`) goes to `int8/`, what `predict` and `serve` load by default; each
of `onnx.compare_schemes` goes to `int8_<scheme>/` for the benchmark's scheme table.

With `onnx.trim_vocab` the exported models keep only the embedding rows of the tokens the corpus (train,
dev and pool texts) uses, plus every special and single-character piece (commentclf.vocab).
Parity against the (untrimmed) torch student is measured on dev + `onnx.parity_pool_rows` pool texts (agreement needs
no labels) and reported with the file sizes; agreement on the test texts, which lie outside the trimming corpus, is
reported beside it, never gated. The stage fails with a clear message when the fp32 or the
deployed int8 agreement is under its bound; the compared schemes are reported, not gated."""

import shutil
from pathlib import Path

import typer
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.errors import ParityError
from commentclf.files import size_mb, write_json
from commentclf.onnx_export import export_fp32, optimize, parity, quantize
from commentclf.onnx_model import OnnxClassifier
from commentclf.stage import run
from commentclf.student import load_student, predict_proba
from commentclf.vocab import trim_vocabulary


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    student_dir: Path = typer.Option(..., help="the torch student (e5_train)"),
    out_dir: Path = typer.Option(..., help="folder of the fp32/, optimized/ and int8/ models"),
    metrics: Path = typer.Option(..., help="parity and sizes (JSON)"),
) -> None:
    cfg = load_params(params)
    o, s = cfg.onnx, cfg.student
    model, tokenizer = load_student(student_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    dev = read_split(split_dir, "dev")["text"].to_list()
    pool_all = read_split(split_dir, "pool")["text"].to_list()
    pool = pool_all[: o.parity_pool_rows]
    texts = dev + pool
    # Test texts lie outside the corpus the vocabulary is cut to, as a deployment's new comments do: their
    # agreement shows what the trim costs there (label-free; reported, never gated).
    test = read_split(split_dir, "test")["text"].to_list()
    ref = predict_proba(model, tokenizer, texts + test, s.prefix, s.max_length)  # before any trimming
    ref, ref_test = ref[: len(texts)], ref[len(texts) :]
    torch_mb = size_mb(student_dir / "model.safetensors", digits=2)
    vocab = None
    if o.trim_vocab:
        corpus = read_split(split_dir, "train")["text"].to_list() + dev + pool_all
        model, tokenizer, vocab = trim_vocabulary(model, tokenizer, corpus, s.prefix, out_dir / "tokenizer")
    fp32 = export_fp32(model, tokenizer, out_dir / "fp32", o.opset)
    optimized = optimize(out_dir / "fp32", out_dir / "optimized", o.optimization_level)
    folders = {o.scheme: "int8", **{x: f"int8_{x}" for x in o.compare_schemes if x != o.scheme}}
    int8 = {}
    for scheme, folder in folders.items():
        int8[scheme], isa = quantize(out_dir / "optimized", optimized.name, out_dir / folder, o, scheme)
    for folder in ("optimized", *folders.values()):  # each folder is loadable on its own (tokenizer + config)
        tokenizer.save_pretrained(out_dir / folder)
    shutil.rmtree(out_dir / "tokenizer", ignore_errors=True)

    results = {}
    for name, path in (("fp32", fp32), *int8.items()):
        p = OnnxClassifier(path, max_length=s.max_length, prefix=s.prefix).predict_proba(texts + test)
        p, p_test = p[: len(texts)], p[len(texts) :]
        results[name] = {
            **parity(ref, p),
            "dev_argmax_agreement": parity(ref[: len(dev)], p[: len(dev)])["argmax_agreement"],
            "test_argmax_agreement": parity(ref_test, p_test)["argmax_agreement"],
        }
    report = {
        "scheme": o.scheme,
        **({"vocab": vocab} if vocab else {}),
        "isa": isa,
        "optimization_level": o.optimization_level,
        "operators": o.operators,
        "parity_rows": {"dev": len(dev), "pool": len(pool), "test (reported, not gated)": len(test)},
        "fp32_vs_torch": results["fp32"],
        "int8_vs_torch": results[o.scheme],
        "size_mb": {
            "torch_fp32": torch_mb,
            "onnx_fp32": size_mb(fp32, digits=2),
            "onnx_optimized": size_mb(optimized, digits=2),
            "onnx_int8": size_mb(int8[o.scheme], digits=2),
        },
        "int8_shrink_vs_torch": round(torch_mb / size_mb(int8[o.scheme], digits=2), 2),
        # what a deployment ships: the model file and the tokenizer beside it
        "int8_folder_mb": size_mb(out_dir / "int8", digits=2),
        "schemes": {
            scheme: {
                "folder": folder,
                "deployed": scheme == o.scheme,
                "vs_torch": results[scheme],
                "passes_gate": results[scheme]["argmax_agreement"] >= o.min_int8_agreement,
                "size_mb": size_mb(int8[scheme], digits=2),
            }
            for scheme, folder in folders.items()
        },
    }
    write_json(metrics, report)
    Console().print(report)
    for key, name, bound_key in (
        ("fp32", "fp32", "min_fp32_agreement"),
        (o.scheme, f"int8 ({o.scheme})", "min_int8_agreement"),
    ):
        agreement, bound = results[key]["argmax_agreement"], getattr(o, bound_key)
        if agreement < bound:
            raise ParityError(
                f"{name} ONNX agrees with torch on {agreement:.2%} of {len(texts)} texts, "
                f"below onnx.{bound_key}={bound:.0%}"
            )


if __name__ == "__main__":
    run(main)
