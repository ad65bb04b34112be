"""ONNX deployment of the student: optimum export (fp32) -> ORT graph optimisation -> int8.

Quantisation includes Gather: for XLM-R vocabularies most of the file is the 250k-row embedding table, and
quantising only MatMul leaves it in fp32 (the file barely shrinks). MatMul is quantised block-wise by
default (see `quantize`); the classic dynamic scheme targets avx512_vnni where the CPU has it, avx2 elsewhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from commentclf.config import OnnxConfig

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


def quantize(opt_dir: Path, file_name: str, out_dir: Path, cfg: OnnxConfig) -> tuple[Path, str]:
    """int8 of the optimised graph; returns the file and the instruction set the kernels target.

    Gather (and MatMul in the `dynamic` scheme) go through onnxruntime's quantize_dynamic, set up as
    optimum's AutoQuantizationConfig.{avx512_vnni, avx2}(is_static=False) would (int8 symmetric weights,
    uint8 activations, reduce_range on avx2). We call onnxruntime directly because the O2 graph holds fused
    com.microsoft operators whose output types its shape inference cannot find, and only the direct call
    lets us pass DefaultTensorType (optimum's ORTQuantizer does not).

    In the `blockwise` scheme MatMul becomes MatMulNBits (8 bits, one scale per `block_size` inputs,
    accuracy level 4 = int8 compute with activations quantised per block). Dynamic quantisation gives a
    whole activation tensor one scale, and the outliers of BERT activations then cost the small channels
    their precision: a student with small class margins flips argmaxes (docs/design.md).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    isa, operators = cfg.isa, cfg.operators
    if isa == "auto":
        isa = "avx512_vnni" if cpu_has_avx512_vnni() else "avx2"
    out_dir.mkdir(parents=True, exist_ok=True)
    for extra in opt_dir.iterdir():  # config, tokenizer, ... so the folder loads on its own
        if extra.is_file() and extra.suffix != ".onnx":
            shutil.copy2(extra, out_dir / extra.name)
    target = out_dir / "model_quantized.onnx"
    blockwise = cfg.scheme == "blockwise" and "MatMul" in operators
    dynamic_ops = [op for op in operators if not (blockwise and op == "MatMul")]
    source = opt_dir / file_name
    if dynamic_ops:
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=dynamic_ops,
            per_channel=cfg.per_channel,
            reduce_range=isa == "avx2",
            weight_type=QuantType.QInt8,
            extra_options={"WeightSymmetric": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        source = target
    if blockwise:
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        settings = dict(block_size=cfg.block_size, is_symmetric=True, accuracy_level=4, bits=8)
        # MatMul only: `operators` decides about Gather (the quantizer would otherwise take it too).
        quantizer = MatMulNBitsQuantizer(
            onnx.load(source),
            **settings,
            op_types_to_quantize=("MatMul",),
            algo_config=DefaultWeightOnlyQuantConfig(**settings, op_types_to_quantize=("MatMul",)),
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    return target, isa


def parity(p_ref: np.ndarray, p_onnx: np.ndarray) -> dict:
    return {
        "argmax_agreement": float(np.mean(p_ref.argmax(1) == p_onnx.argmax(1))),
        "max_prob_diff": float(np.abs(p_ref - p_onnx).max()),
        "rows": len(p_ref),
    }
