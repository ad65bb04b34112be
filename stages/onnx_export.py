"""Stage `onnx_export`: optimum export of the student -> ORT graph optimisation -> int8.

The deployed int8 model (`onnx.scheme`) goes to `int8/`, what `predict` and `serve` load by default; each
of `onnx.compare_schemes` goes to `int8_<scheme>/` for the benchmark's scheme table.

With `onnx.trim_vocab` the exported models keep only the embedding rows of the tokens the corpus (train,
dev and pool texts, less the held-out ones) uses, plus every special and single-character piece
(commentclf.student.vocab). Parity against the (untrimmed) torch student is gated on `onnx.parity_pool_rows`
pool texts held out of that corpus, as next week's comments are (agreement needs no labels); where the trimmed
models miss a bound there, the export is redone untrimmed. Agreement on dev and test is reported beside it,
never gated. Each model's temperature and conformal sets are fitted on the calib rows, which no model trained
on (the teachers that labelled the student's pool saw train and dev). The stage fails with a clear message
when the fp32 or the deployed int8 agreement is under its bound; the compared schemes are reported, not
gated."""

from pathlib import Path

import typer
from rich.console import Console

from commentclf.config import load_params
from commentclf.data import read_split
from commentclf.files import write_json
from commentclf.stage import run
from commentclf.student.model import load_student
from commentclf.student.onnx_export import ParityTexts, export_student, gate


def main(
    params: Path = typer.Option(..., help="params.yaml"),
    split_dir: Path = typer.Option(..., help="folder of the split parquet files"),
    student_dir: Path = typer.Option(..., help="the torch student (e5_train)"),
    out_dir: Path = typer.Option(..., help="folder of the fp32/, optimized/ and int8/ models"),
    metrics: Path = typer.Option(..., help="parity and sizes (JSON)"),
) -> None:
    cfg = load_params(params)
    model, tokenizer = load_student(student_dir)
    dev, test = (read_split(split_dir, name)["text"].to_list() for name in ("dev", "test"))
    calib = read_split(split_dir, "calib")
    pool = read_split(split_dir, "pool")["text"].to_list()
    # the pool is sorted by id, a hash of the text: its first rows are a random sample of it
    held_out, rest = pool[: cfg.onnx.parity_pool_rows], pool[cfg.onnx.parity_pool_rows :]
    texts = ParityTexts(dev, held_out, test, calib["text"].to_list(), calib["label"].to_list())
    corpus = read_split(split_dir, "train")["text"].to_list() + dev + rest  # what the vocabulary is trimmed to
    report = export_student(model, tokenizer, texts, corpus, student_dir, out_dir, cfg)
    write_json(metrics, report)
    Console().print(report)
    gate(report, cfg.onnx)


if __name__ == "__main__":
    run(main)
