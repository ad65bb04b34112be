"""ONNX deployment of the student: optimum export (fp32) -> ORT graph optimisation -> int8, and the parity gate
(`export_student`, the onnx_export stage's work).

Quantisation includes Gather: for XLM-R vocabularies most of the file is the 250k-row embedding table, and
quantising only MatMul leaves it in fp32 (the file barely shrinks). How MatMul becomes int8 is the scheme
(`quantize`); the dynamic kernels target avx512_vnni where the CPU has it, avx2 elsewhere.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from commentclf.config import OnnxConfig, Params
from commentclf.errors import ParityError
from commentclf.files import size_mb

FP32_FILE = "model.onnx"


def cpu_has_avx512_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx512vnni" in flags


def export_fp32(model, tokenizer, out_dir: Path, opset: int = 18) -> Path:
    """optimum export of a loaded student, validated against torch outputs.

    Our MeanPoolingClassifier is a BERT to optimum (config.model_type "bert"), so optimum's BERT ONNX config
    for text classification describes its inputs and `logits` output. We call optimum's `export` directly:
    `onnx_export_from_model` infers the model's library from its Python module and rejects a class that
    lives outside transformers.
    """
    from optimum.exporters.onnx.convert import export, validate_model_outputs
    from optimum.exporters.onnx.model_configs import BertOnnxConfig

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    model.eval()
    onnx_config = BertOnnxConfig(model.config, task="text-classification")
    path = out_dir / FP32_FILE
    _, outputs = export(model, onnx_config, path, opset=opset)
    validate_model_outputs(onnx_config, model, path, outputs, atol=1e-4, use_subprocess=False)
    model.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return path


def optimize(fp32_dir: Path, out_dir: Path, level: str) -> Path:
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    optimizer = ORTOptimizer.from_pretrained(fp32_dir, file_names=[FP32_FILE])
    optimizer.optimize(AutoOptimizationConfig.with_optimization_level(level), save_dir=out_dir)
    return out_dir / "model_optimized.onnx"


def ffn_output_matmuls(model, intermediate_size: int) -> list[str]:
    """The MatMuls that read the feed-forward activations (their weight has `intermediate_size` input rows).

    Those activations (after GELU) carry the outliers of BERT-like models: one scale for a whole activation
    tensor, as dynamic quantisation gives, costs the small channels their precision there and nowhere else
    as much (docs/design.md). Found by weight shape, not node name, so any BERT-like export qualifies."""
    weights = {w.name: tuple(w.dims) for w in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and len(weights.get(node.input[1], ())) == 2
        and weights[node.input[1]][0] == intermediate_size
    ]


def quantize(
    opt_dir: Path, file_name: str, out_dir: Path, cfg: OnnxConfig, scheme: str | None = None
) -> tuple[Path, str]:
    """int8 of the optimised graph with `scheme` (default `cfg.scheme`); returns the file and the instruction
    set the kernels target.

    The MatMuls the scheme gives it (and Gather, with `embedding: dynamic`) go through onnxruntime's
    quantize_dynamic, set up as optimum's AutoQuantizationConfig.{avx512_vnni, avx2}(is_static=False) would
    (int8 symmetric weights, uint8 activations, reduce_range on avx2). We call onnxruntime directly because
    fused com.microsoft operators have output types its shape inference cannot find, and only the direct
    call lets us pass DefaultTensorType (optimum's ORTQuantizer does not).

    Block-wise MatMuls become MatMulNBits (8 bits, one scale per `block_size` inputs, accuracy level 4 =
    int8 compute with activations quantised per block): slower kernels than dynamic int8, but no single
    scale for a whole activation tensor. `hybrid` uses them only for the feed-forward output projections
    (`ffn_output_matmuls`), where that matters, and the fast dynamic kernels everywhere else. With
    `embedding: blockwise` the embedding tables go last, block-wise too (`quantize_embeddings`).
    """
    import json

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    scheme = scheme or cfg.scheme
    isa, operators = cfg.isa, cfg.operators
    if isa == "auto":
        isa = "avx512_vnni" if cpu_has_avx512_vnni() else "avx2"
    out_dir.mkdir(parents=True, exist_ok=True)
    for extra in opt_dir.iterdir():  # config, tokenizer, ... so the folder loads on its own
        if extra.is_file() and extra.suffix != ".onnx":
            shutil.copy2(extra, out_dir / extra.name)
    target = out_dir / "model_quantized.onnx"
    source = opt_dir / file_name
    quantize_matmul = "MatMul" in operators
    blockwise = quantize_matmul and scheme in ("blockwise", "hybrid")
    block_embeddings = "Gather" in operators and cfg.embedding == "blockwise"
    dynamic_ops = [
        op
        for op in operators
        if not (scheme == "blockwise" and op == "MatMul") and not (block_embeddings and op == "Gather")
    ]
    exclude = []
    if scheme == "hybrid" and quantize_matmul:
        intermediate = json.loads((opt_dir / "config.json").read_text())["intermediate_size"]
        exclude = ffn_output_matmuls(onnx.load(source, load_external_data=False), intermediate)
    if dynamic_ops:
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=dynamic_ops,
            per_channel=cfg.per_channel,
            reduce_range=isa == "avx2",
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            extra_options={"WeightSymmetric": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        source = target
    if blockwise:
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        settings = dict(block_size=cfg.block_size, is_symmetric=True, accuracy_level=4, bits=8)
        # MatMul only (the quantizer would otherwise take Gather too); in `hybrid` the MatMuls left in float
        # after the dynamic pass are exactly the feed-forward outputs.
        quantizer = MatMulNBitsQuantizer(
            onnx.load(source),
            **settings,
            op_types_to_quantize=("MatMul",),
            algo_config=DefaultWeightOnlyQuantConfig(**settings, op_types_to_quantize=("MatMul",)),
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
        source = target
    if block_embeddings:
        model = onnx.load(source)
        quantize_embeddings(model, cfg.embedding_bits, cfg.block_size)
        onnx.save(model, target)
    elif source != target:  # nothing to quantise: the optimised graph as it is
        shutil.copy2(source, target)
    return target, isa


def block_quantize(table: np.ndarray, bits: int, block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric block quantisation of a [rows, cols] table along its rows, as GatherBlockQuantized reads it.

    Returns (data, scales, zero_points): uint8 data holding `bits`-bit values offset by 2**(bits-1) (two values
    per byte at 4 bits, the even column in the low nibble), one float scale per `block_size` values of a row,
    and the zero points (2**(bits-1), packed like the data)."""
    rows, cols = table.shape
    if cols % block_size:
        raise ValueError(f"embedding width {cols} is not a multiple of onnx.block_size={block_size}")
    half = 2 ** (bits - 1)
    blocks = table.reshape(rows, cols // block_size, block_size).astype(np.float32)
    scales = np.abs(blocks).max(axis=2) / (half - 1)
    scales[scales == 0] = 1.0  # an all-zero block (padding rows): any scale restores zeros
    q = np.clip(np.rint(blocks / scales[..., None]), -half, half - 1).astype(np.int32) + half
    q = q.reshape(rows, cols).astype(np.uint8)
    zero_points = np.full(scales.shape, half, dtype=np.uint8)
    if bits == 4:
        q = q[:, 0::2] | (q[:, 1::2] << 4)
        if zero_points.shape[1] % 2:
            zero_points = np.pad(zero_points, ((0, 0), (0, 1)), constant_values=half)
        zero_points = zero_points[:, 0::2] | (zero_points[:, 1::2] << 4)
    return q, scales.astype(np.float32), zero_points


def quantize_embeddings(model, bits: int, block_size: int) -> list[str]:
    """Every Gather over a 2-D float table (word, position and type embeddings) becomes com.microsoft
    GatherBlockQuantized with a scale per `block_size` values of a row; returns the tables replaced.

    One scale for a whole table (quantize_dynamic's Gather) spends the 8 bits of every row on the range of
    the largest values of any row; a scale per block keeps each row's own range, at 3 % more bytes
    (docs/design.md). onnxruntime's own quantizer writes this operator only at 4 bits, hence our own."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    tables = {w.name: w for w in graph.initializer if w.data_type == TensorProto.FLOAT and len(w.dims) == 2}
    replaced = []
    for i, node in enumerate(graph.node):
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if node.op_type != "Gather" or node.input[0] not in tables or axis != 0:
            continue
        name = node.input[0]
        data, scales, zero_points = block_quantize(numpy_helper.to_array(tables[name]), bits, block_size)
        graph.initializer.remove(tables.pop(name))
        graph.initializer.extend(
            [
                numpy_helper.from_array(data, f"{name}_q{bits}"),
                numpy_helper.from_array(scales, f"{name}_scales"),
                numpy_helper.from_array(zero_points, f"{name}_zero_points"),
            ]
        )
        graph.node.remove(node)
        graph.node.insert(
            i,
            helper.make_node(
                "GatherBlockQuantized",
                [f"{name}_q{bits}", node.input[1], f"{name}_scales", f"{name}_zero_points"],
                list(node.output),
                name=f"{node.name}_block_q{bits}",
                domain="com.microsoft",
                gather_axis=0,
                quantize_axis=1,
                block_size=block_size,
                bits=bits,
            ),
        )
        replaced.append(name)
    if replaced and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return replaced


def parity(p_ref: np.ndarray, p_onnx: np.ndarray) -> dict:
    return {
        "argmax_agreement": float(np.mean(p_ref.argmax(1) == p_onnx.argmax(1))),
        "max_prob_diff": float(np.abs(p_ref - p_onnx).max()),
        "rows": len(p_ref),
    }


@dataclass
class ParityTexts:
    """The texts the exported models are compared with torch on, and the rows they are calibrated on. `pool`:
    pool rows held out of the corpus the vocabulary is trimmed to, the gate's rows (like next week's comments,
    they may hold tokens the trimmed vocabulary lacks). `dev` (inside the corpus) and `test` (outside it) are
    reported, never gated. `calib` (with its labels): seed rows no model trained on, each model's temperature
    and conformal sets are fitted on them."""

    dev: list[str]
    pool: list[str]
    test: list[str]
    calib: list[str]
    calib_labels: list[str]

    def scored(self) -> list[str]:
        """Every text an export is scored on, in the order `rows` slices them."""
        return self.dev + self.pool + self.test + self.calib

    def rows(self) -> dict[str, slice]:
        bounds = np.cumsum([0, len(self.dev), len(self.pool), len(self.test), len(self.calib)])
        return {name: slice(a, b) for name, a, b in zip(("dev", "pool", "test", "calib"), bounds, bounds[1:])}


def export_student(
    model, tokenizer, texts: ParityTexts, corpus: list[str], student_dir: Path, out_dir: Path, cfg: Params
) -> dict:
    """Export, optimise and quantise the torch student into `out_dir` (fp32/, optimized/, int8/ for
    `onnx.scheme`, int8_<x>/ for each of `onnx.compare_schemes`), with the vocabulary trimmed to `corpus` when
    `onnx.trim_vocab`; returns the report (parity, sizes, schemes). When the trimmed models miss a bound on the
    held-out pool rows, the export is redone untrimmed (what the trimmed one measured stays in the report under
    `trim_refused`). `gate` then checks the report."""
    from commentclf.student.model import load_student, predict_proba

    s = cfg.student
    if not texts.pool:
        raise ParityError("no pool rows to gate the export on: onnx.parity_pool_rows is 0 or the pool is empty")
    ref = predict_proba(model, tokenizer, texts.scored(), s.prefix, s.max_length)
    torch_mb = size_mb(student_dir / "model.safetensors", digits=2)
    report = _export(model, tokenizer, texts, ref, corpus if cfg.onnx.trim_vocab else None, out_dir, cfg)
    if cfg.onnx.trim_vocab and _misses(report, cfg.onnx):
        refused = {k: report[k] for k in ("vocab", "fp32_vs_torch", "int8_vs_torch", "size_mb")}
        model, tokenizer = load_student(student_dir)  # trimming changed the model in place
        report = _export(model, tokenizer, texts, ref, None, out_dir, cfg) | {"trim_refused": refused}
    report["size_mb"]["torch_fp32"] = torch_mb
    report["int8_shrink_vs_torch"] = round(torch_mb / report["size_mb"]["onnx_int8"], 2)
    return report


def _export(
    model, tokenizer, texts: ParityTexts, ref: np.ndarray, corpus: list[str] | None, out_dir: Path, cfg: Params
) -> dict:
    """One export of `model` (its vocabulary trimmed to `corpus` unless None), each model compared with the
    torch scores `ref` (of `texts.scored()`) and calibrated on the calib rows."""
    from commentclf.student.onnx_model import OnnxClassifier
    from commentclf.student.vocab import trim_vocabulary

    o, s = cfg.onnx, cfg.student
    if out_dir.exists():
        shutil.rmtree(out_dir)
    vocab = None
    if corpus is not None:
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

    rows = texts.rows()
    results, calibration = {}, {}
    for name, path in (("fp32", fp32), *int8.items()):
        clf = OnnxClassifier(path, max_length=s.max_length, prefix=s.prefix, calibrated=False)
        p = clf.predict_proba(texts.scored())  # the export's own, uncalibrated scores: parity is about the export
        results[name] = {
            **parity(ref[rows["pool"]], p[rows["pool"]]),  # the gated measure: held-out pool rows
            "dev_argmax_agreement": parity(ref[rows["dev"]], p[rows["dev"]])["argmax_agreement"],
            "test_argmax_agreement": parity(ref[rows["test"]], p[rows["test"]])["argmax_agreement"],
        }
        calibration[name] = calibrate(path.parent, p[rows["calib"]], texts.calib_labels, clf.labels, o.calibrate)
    return {
        "scheme": o.scheme,
        "trimmed": vocab is not None,
        **({"vocab": vocab} if vocab else {}),
        "isa": isa,
        "optimization_level": o.optimization_level,
        "operators": o.operators,
        "parity_rows": {
            "pool (held out of the trimming corpus; gated)": len(texts.pool),
            "dev (reported)": len(texts.dev),
            "test (reported)": len(texts.test),
        },
        "calibration": calibration,
        "fp32_vs_torch": results["fp32"],
        "int8_vs_torch": results[o.scheme],
        "size_mb": {
            "onnx_fp32": size_mb(fp32, digits=2),
            "onnx_optimized": size_mb(optimized, digits=2),
            "onnx_int8": size_mb(int8[o.scheme], digits=2),
        },
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


def _misses(report: dict, o: OnnxConfig) -> str | None:
    """The first bound the report's gated agreement misses, as a sentence; None when both pass."""
    for key, name, bound_key in (
        ("fp32_vs_torch", "fp32", "min_fp32_agreement"),
        ("int8_vs_torch", f"int8 ({o.scheme})", "min_int8_agreement"),
    ):
        agreement, bound = report[key]["argmax_agreement"], getattr(o, bound_key)
        if agreement < bound:
            n = report[key]["rows"]
            return (
                f"{name} ONNX agrees with torch on {agreement:.2%} of {n} held-out pool texts, "
                f"below onnx.{bound_key}={bound:.0%}"
            )
    return None


def gate(report: dict, o: OnnxConfig) -> None:
    """Fail with a clear message when the fp32 or the deployed int8 agreement on the held-out pool rows is under
    its bound (the compared schemes are reported, not gated)."""
    missed = _misses(report, o)
    if missed:
        raise ParityError(missed)


def calibrate(folder: Path, proba: np.ndarray, gold_labels: list[str], labels: list[str], method: str) -> dict:
    """Fit the model's temperature on its scores of the calib rows, then its conformal sets on the calibrated
    scores, and ship both in `folder` (calibration.json, which OnnxClassifier reads); returns the fit with the
    calib rows' ECE and NLL before and after (what it was fitted on: the benchmark measures it on test)."""
    from commentclf.calibration import apply_calibration, calibration_report, fit_calibration
    from commentclf.conformal import ConformalSets
    from commentclf.student.onnx_model import CALIBRATION

    gold = np.array([labels.index(y) for y in gold_labels])
    fit = fit_calibration(proba, gold, "none" if method == "none" else "temperature")
    calibrated = apply_calibration(proba, fit)
    shipped = {
        "method": method,
        "temperature": fit["temperature"],
        "fitted_on": "calib",
        "rows": len(gold),
        "conformal": ConformalSets.fit(calibrated, gold).to_dict(),
    }
    (folder / CALIBRATION).write_text(json.dumps(shipped) + "\n")
    before, after = calibration_report(proba, gold), calibration_report(calibrated, gold)
    return {
        "temperature": fit["temperature"],
        "calib_rows": len(gold),
        **{f"calib_{k}": before[k] for k in ("ece", "nll")},
        **{f"calib_{k}_calibrated": after[k] for k in ("ece", "nll")},
    }
