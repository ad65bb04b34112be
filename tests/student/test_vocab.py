"""Vocabulary trimming of the student (onnx.trim_vocab), on the real e5 tokenizer and a tiny model."""

import numpy as np
import pytest
import torch

from commentclf.errors import VocabError
from commentclf.student.model import MeanPoolingClassifier, predict_proba
from commentclf.student.vocab import coverage, trim_vocabulary

CORPUS = [
    "Il faut armer l'Ukraine.",
    "L'OTAN a provoqué la Russie, disent-ils.",
    "Le site est en panne ce matin.",
    "Слава Україні!",
]
PREFIX = "query: "


@pytest.fixture(scope="module")
def trimmed(e5_folder, tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig

    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "a", 1: "b"},
        label2id={"a": 0, "b": 1},
    )
    model = MeanPoolingClassifier(config).eval()
    full_p = predict_proba(model, tokenizer, CORPUS, PREFIX, 64)
    small, small_tok, report = trim_vocabulary(model, tokenizer, CORPUS, PREFIX, tmp_path_factory.mktemp("tok"))
    return tokenizer, small, small_tok, report, full_p


def test_in_corpus_text_keeps_its_ids_and_its_outputs(trimmed):
    full, small, small_tok, report, full_p = trimmed
    assert report["vocab_before"] == len(full) and report["vocab_after"] == len(small_tok) < len(full) // 10
    assert small.get_input_embeddings().weight.shape[0] == len(small_tok) == small.config.vocab_size
    for text in CORPUS:  # the same pieces, so the same embedding rows under new numbers
        assert small_tok.tokenize(PREFIX + text) == full.tokenize(PREFIX + text)
    assert np.allclose(predict_proba(small, small_tok, CORPUS, PREFIX, 64), full_p, atol=1e-6)
    assert small_tok.pad_token_id == small.config.pad_token_id


def test_unseen_text_still_tokenizes_without_unknowns(trimmed):
    full, _, small_tok, _, _ = trimmed
    unseen = ["Anticonstitutionnellement, 東京 🚀 ünïcödé", "Zelensky speaks in Kyiv"]
    cov = coverage(full, small_tok, unseen, PREFIX)
    assert cov["unk_rate"] == 0 and cov["texts_split_as_before"] < 1 and 0 < cov["token_coverage"] < 1
    for text in unseen:  # shorter pieces, the same characters
        pieces = small_tok.tokenize(PREFIX + text)
        assert "".join(pieces).replace("\u2581", " ").strip() == (PREFIX + text).strip()


def test_a_tokenizer_that_is_not_unigram_is_refused(tiny_llm_folder, tmp_path):
    from transformers import AutoTokenizer

    bpe = AutoTokenizer.from_pretrained(tiny_llm_folder)
    with pytest.raises(VocabError, match="Unigram"):
        trim_vocabulary(None, bpe, CORPUS, PREFIX, tmp_path)
