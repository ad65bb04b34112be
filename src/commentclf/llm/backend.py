"""Which fine-tuning backend runs, the base model it starts from, and how a trained adapter is saved.

`unsloth` needs CUDA and the `gpu` extra (4-bit QLoRA as in the original); `peft` (peft + trl) runs on CPU
or GPU, fp32/bf16 LoRA or QLoRA through bitsandbytes. `auto` picks unsloth only where it can run.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from commentclf.errors import LLMError
from commentclf.files import canonical_json


def choose_backend(requested: str, cuda: bool | None = None, unsloth_installed: bool | None = None) -> str:
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if unsloth_installed is None:
        unsloth_installed = importlib.util.find_spec("unsloth") is not None
    if requested == "auto":
        return "unsloth" if cuda and unsloth_installed else "peft"
    if requested == "unsloth" and not cuda:
        raise LLMError("llm.backend=unsloth needs a CUDA GPU; use backend: peft (or auto) on CPU")
    if requested == "unsloth" and not unsloth_installed:
        raise LLMError("llm.backend=unsloth needs the gpu extra: pip install -e '.[gpu]' (CUDA hosts only)")
    return requested


def import_unsloth_first() -> None:
    """unsloth patches transformers, trl and peft: it must be imported before any of them."""
    import unsloth  # noqa: F401


def load_base(model_name: str, backend: str, quantize: str, max_length: int):
    """(model, tokenizer) ready for LoRA: fp32 on CPU, bf16 on GPU, 4-bit NF4 for QLoRA."""
    import torch

    if backend == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name, max_seq_length=max_length, load_in_4bit=quantize == "4bit", dtype=None
        )
        return model, tokenizer

    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model_name)
    cuda = torch.cuda.is_available()
    kwargs = weight_kwargs(quantize)
    model = AutoModelForCausalLM.from_pretrained(model_name, **kwargs)
    if cuda and quantize != "4bit":
        model = model.to("cuda")
    return model, tokenizer


def load_tokenizer(model_name: str):
    """The base's tokenizer, with EOS as padding where it has no pad token (batches need one)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def weight_kwargs(quantize: str) -> dict:
    """`from_pretrained` arguments for the base's weights: fp32 on CPU, bf16 on GPU, 4-bit NF4 for QLoRA."""
    import torch
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        # compute dtype bf16 for both the weights and the compute, else generate() fails on mixed dtypes.
        return {
            "dtype": torch.bfloat16,
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            ),
        }
    return {"dtype": torch.bfloat16 if torch.cuda.is_available() else torch.float32}


def save_adapter(trainer, tokenizer, out_dir: Path, meta: dict, sorted_lists: tuple[str, ...]) -> list[dict]:
    """Save a trained LoRA adapter (a PeftModel saves the adapter only), its tokenizer and `commentclf.json`
    (what loading it back needs: `meta`); return the loss curve of the training log."""
    trainer.model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    canonical_json(out_dir / "adapter_config.json", sorted_lists=sorted_lists)
    (out_dir / "commentclf.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2))
    return [
        {"step": h["step"], "loss": h["loss"], "learning_rate": h["learning_rate"]}
        for h in trainer.state.log_history
        if "loss" in h
    ]


def train_report(curve: list[dict], seconds: float, rows: int, steps: int) -> dict:
    return {
        "train_seconds": round(seconds, 1),
        "train_rows": rows,
        "steps": steps,
        "first_loss": curve[0]["loss"] if curve else None,
        "last_loss": curve[-1]["loss"] if curve else None,
    }
