"""Which fine-tuning backend runs, and the base model it starts from.

`unsloth` needs CUDA and the `gpu` extra (4-bit QLoRA as in the original); `peft` (peft + trl) runs on CPU
or GPU, fp32/bf16 LoRA or QLoRA through bitsandbytes. `auto` picks unsloth only where it can run.
"""

from __future__ import annotations

import importlib.util

from commentclf.errors import LLMError


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

    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(model_name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    kwargs = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if quantize == "4bit":
        # compute dtype bf16 for both the weights and the compute, else generate() fails on mixed dtypes.
        kwargs = {
            "dtype": torch.bfloat16,
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            ),
        }
    model = AutoModelForCausalLM.from_pretrained(model_name, **kwargs)
    if cuda and quantize != "4bit":
        model = model.to("cuda")
    return model, tokenizer
