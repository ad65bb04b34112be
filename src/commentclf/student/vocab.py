"""Vocabulary trimming of the student: keep the tokens the user's corpus uses.

multilingual-e5-small spends most of its weights on a 250k-row embedding table shared by 100 languages; a
deployment in one language reads a few tens of thousands of rows. `trim_vocabulary` keeps the tokens that
the corpus (train + dev + pool texts) produces, every special token and every single-character piece, and
rebuilds the tokenizer and the embedding table with only those rows.

Why in-corpus text keeps its ids: the tokenizer is a Unigram model, which picks the segmentation with the
highest total score among those its vocabulary allows. Every piece of a corpus text's best segmentation is
kept, with its score, so that segmentation is still allowed and still the best: the ids are the old ones,
renumbered. `trim_vocabulary` checks this on the whole corpus and fails if a single text differs. Text
from outside the corpus still tokenizes (the single-character pieces spell anything the full vocabulary
could, short of characters it did not know either); a word whose pieces were dropped is spelt with other,
shorter pieces, which `coverage` measures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from commentclf.errors import VocabError


def _encode(tokenizer, texts: list[str], prefix: str) -> list[list[int]]:
    return tokenizer([prefix + t for t in texts], add_special_tokens=True)["input_ids"]


def _remap_ids(node, remap: dict[int, int]):
    """Renumber every token id in a tokenizer.json post-processor (TemplateProcessing `ids`, Roberta/Bert
    processing `cls`/`sep` pairs)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list):
                out[key] = [remap[i] for i in value]
            elif key in ("cls", "sep") and isinstance(value, list) and len(value) == 2:
                out[key] = [value[0], remap[value[1]]]
            else:
                out[key] = _remap_ids(value, remap)
        return out
    if isinstance(node, list):
        return [_remap_ids(v, remap) for v in node]
    return node


def trim_vocabulary(model, tokenizer, texts: list[str], prefix: str, out_dir: Path):
    """(model, tokenizer, report): the model with only the kept embedding rows and the matching tokenizer,
    saved to `out_dir` (the tokenizer; the caller saves or exports the model). The model is changed in
    place."""
    import torch
    from transformers import AutoTokenizer

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "Unigram":
        raise VocabError(
            f"vocabulary trimming supports Unigram tokenizers (XLM-R, e5); this one is {spec['model']['type']}"
        )
    vocab = spec["model"]["vocab"]
    corpus_ids = _encode(tokenizer, texts, prefix)
    used = {i for ids in corpus_ids for i in ids}
    special = {t["id"] for t in spec["added_tokens"]} | set(tokenizer.all_special_ids)
    single = {i for i, (piece, _) in enumerate(vocab) if len(piece.lstrip("\u2581")) <= 1}
    keep = sorted(used | special | single)
    remap = {old: new for new, old in enumerate(keep)}

    spec["model"]["vocab"] = [vocab[i] for i in keep]
    spec["model"]["unk_id"] = remap[spec["model"]["unk_id"]]
    for token in spec["added_tokens"]:
        token["id"] = remap[token["id"]]
    spec["post_processor"] = _remap_ids(spec["post_processor"], remap)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    if "added_tokens_decoder" in config:
        config["added_tokens_decoder"] = {str(remap[int(k)]): v for k, v in config["added_tokens_decoder"].items()}
    config_file.write_text(json.dumps(config, ensure_ascii=False, indent=2))
    trimmed = AutoTokenizer.from_pretrained(out_dir)

    # The guarantee, checked rather than assumed: every corpus text gets its old ids, renumbered.
    for text, old, new in zip(texts, corpus_ids, _encode(trimmed, texts, prefix)):
        if [remap[i] for i in old] != new:
            raise VocabError(f"the trimmed tokenizer splits a corpus text differently: {text[:80]!r}")

    old_embeddings = model.get_input_embeddings()
    weight = old_embeddings.weight.detach()[torch.tensor(keep)]
    pad = remap.get(old_embeddings.padding_idx) if old_embeddings.padding_idx is not None else None
    model.set_input_embeddings(torch.nn.Embedding.from_pretrained(weight.clone(), freeze=False, padding_idx=pad))
    model.config.vocab_size = len(keep)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(model.config, key, None) is not None:
            setattr(model.config, key, remap[getattr(model.config, key)])
    report = {
        "vocab_before": len(vocab),
        "vocab_after": len(keep),
        "from_corpus": len(used),
        "single_characters": len(single),
        "special": len(special),
        "corpus_texts": len(texts),
        "embedding_params_before": int(old_embeddings.weight.numel()),
        "embedding_params_after": int(weight.numel()),
    }
    return model, trimmed, report


def coverage(full, trimmed, texts: list[str], prefix: str) -> dict:
    """How the trimmed tokenizer does on `texts` it was not built from: the share of the full tokenizer's
    tokens whose piece is still in the vocabulary, and the share of texts split exactly as before."""
    kept = set(trimmed.get_vocab())
    same_texts, tokens, tokens_kept = 0, 0, 0
    for old, new in zip(_encode(full, texts, prefix), _encode(trimmed, texts, prefix)):
        old_pieces = full.convert_ids_to_tokens(old)
        tokens += len(old_pieces)
        tokens_kept += sum(p in kept for p in old_pieces)
        same_texts += old_pieces == trimmed.convert_ids_to_tokens(new)
    return {
        "texts": len(texts),
        "token_coverage": tokens_kept / max(1, tokens),
        "texts_split_as_before": same_texts / max(1, len(texts)),
        "unk_rate": float(
            np.mean([i == trimmed.unk_token_id for ids in _encode(trimmed, texts, prefix) for i in ids] or [0.0])
        ),
    }
