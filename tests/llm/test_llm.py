"""The LLM classifier on a tiny random Llama (SmolLM2's tokenizer): real training, generate and score."""

import json

import numpy as np
import pytest

from commentclf.config import Label
from commentclf.errors import LLMError
from commentclf.llm.attention import use_block_attention
from commentclf.llm.backend import choose_backend, load_base
from commentclf.llm.classifier import LLMClassifier
from commentclf.llm.prompts import classification_prompt
from commentclf.llm.tokens import PromptTokens, first_token_groups
from commentclf.llm.train import balance, finetune
from conftest import section

LABELS = [
    Label(name="pro_ukraine", description="soutient l'Ukraine"),
    Label(name="pro_russia", description="penche du côté russe"),
    Label(name="off_topic", description="hors sujet"),
]
NAMES = [label.name for label in LABELS]
PROMPT = classification_prompt(LABELS, "fr", "Commentaires de lecteurs.")
# The same labels answered by words that differ at their first token (labels[].answer in params)
WORDS = {"pro_ukraine": "Ukraine", "pro_russia": "Russie", "off_topic": "hors_sujet"}
PROMPT_W = classification_prompt(LABELS, "fr", "Commentaires de lecteurs.", WORDS)
TEXTS = [
    "Armons l'Ukraine !",
    "L'OTAN a provoqué Moscou.",
    "Le site est lent ce matin.",
    "Slava Ukraini, tenez bon.",
    "Levez les sanctions, on paie tout.",
    "Quelle belle photo.",
]
GOLD = ["pro_ukraine", "pro_russia", "off_topic"] * 2
# Real SmolLM2 (it knows JSON already), six rows, a high learning rate: it fits them in about a minute.
SETTINGS = section(
    "llm",
    lora_r=8,
    lora_alpha=16,
    lora_dropout=0.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    lr=2e-3,
    epochs=8,
    batch_size=6,
    grad_accum=1,
    max_length=400,
    warmup_ratio=0.0,
    quantize="none",
)


def test_backend_choice_without_cuda():
    assert choose_backend("auto", cuda=False, unsloth_installed=True) == "peft"
    assert choose_backend("auto", cuda=True, unsloth_installed=True) == "unsloth"
    assert choose_backend("auto", cuda=True, unsloth_installed=False) == "peft"
    assert choose_backend("peft", cuda=False, unsloth_installed=False) == "peft"
    with pytest.raises(LLMError, match="needs a CUDA GPU"):
        choose_backend("unsloth", cuda=False, unsloth_installed=True)
    with pytest.raises(LLMError, match="needs the gpu extra"):
        choose_backend("unsloth", cuda=True, unsloth_installed=False)
    assert choose_backend("auto") == "peft"  # this machine: no CUDA


def test_balance_oversamples_to_the_largest_label():
    texts, labels = balance(list("abcdef"), ["x", "x", "x", "x", "y", "z"], seed=0)
    assert sorted(labels) == ["x"] * 4 + ["y"] * 4 + ["z"] * 4
    assert balance(list("abcdef"), ["x", "x", "x", "x", "y", "z"], seed=0) == (texts, labels)


def test_prompt_tokens_cut_long_comments(tiny_llm_folder):
    _, tok = load_base(str(tiny_llm_folder), "peft", "none", 512)
    tokens = PromptTokens.build(tok, PROMPT, NAMES, max_length=200)
    ids = tokens.prompt(tok, "mot " * 1000)
    assert len(ids) + max(map(len, tokens.answers.values())) <= 200
    assert ids[: len(tokens.prefix)] == tokens.prefix and ids[-len(tokens.suffix) :] == tokens.suffix
    with pytest.raises(LLMError, match="leaves no room for the comment"):
        PromptTokens.build(tok, PROMPT, NAMES, max_length=40)


def test_score_equals_naive_forward_passes(tiny_llm_folder):
    model, tok = load_base(str(tiny_llm_folder), "peft", "none", 512)
    clf = LLMClassifier(model, tok, PROMPT, NAMES, 512)
    assert clf.block_attention  # each comment of a packed row attends to the prefix and itself only
    proba = clf.score(TEXTS + ["x" * 3000], batch_size=3)  # ragged batch, one comment cut
    assert proba.shape == (7, 3) and np.allclose(proba.sum(1), 1)
    for text, p in zip(TEXTS + ["x" * 3000], proba):
        lp = naive_logprobs(clf, text)
        ref = np.exp(lp - lp.max())
        assert np.allclose(p, ref / ref.sum(), atol=1e-5)
    assert np.allclose(clf.score(TEXTS, batch_size=1), proba[:6], atol=1e-5)  # batching changes nothing
    clf.block_attention = False  # one mask over the whole packed row: the same numbers
    assert np.allclose(clf.score(TEXTS + ["x" * 3000], batch_size=3), proba, atol=1e-5)


def test_block_attention_leaves_generate_and_other_attentions_alone(tiny_llm_folder):
    import torch

    plain, tok = load_base(str(tiny_llm_folder), "peft", "none", 512)
    switched, _ = load_base(str(tiny_llm_folder), "peft", "none", 512)
    assert use_block_attention(switched) and switched.config._attn_implementation == "commentclf_blocks"
    ids = torch.tensor([tok("Armons l'Ukraine !")["input_ids"]] * 2)
    ids[0, :2] = tok.eos_token_id  # left padding in one row: the mask path too
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    with torch.no_grad():
        a = plain.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
        b = switched.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b)
    plain.set_attn_implementation("eager")
    assert not use_block_attention(plain) and plain.config._attn_implementation == "eager"


@pytest.fixture(scope="module")
def trained(smollm_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter")
    info, curve = finetune(str(smollm_folder), "peft", TEXTS, GOLD, PROMPT_W, WORDS, SETTINGS, 0, out)
    assert len(curve) == info["steps"] and curve[0]["loss"] == info["first_loss"]
    return out, info


def test_finetune_learns_and_saves_adapter_only(trained):
    out, info = trained
    assert info["last_loss"] < info["first_loss"] / 2
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    meta = json.loads((out / "commentclf.json").read_text())
    assert meta["labels"] == NAMES and meta["prompt_prefix"] == PROMPT_W.prefix
    assert meta["answers"] == WORDS and meta["quantize"] == "none"
    modules = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert modules == sorted(modules)  # peft writes a set: sorted, the adapter's bytes do not depend on the hash seed


def test_generate_follows_the_answer_tree_greedily(trained):
    """Greedy decoding picks the likeliest next token at each step, `score` the likeliest whole answer;
    they can differ (most when labels share first tokens, see `test_shared_first_tokens_warn`), so their
    agreement is a measured figure (metrics/llm.json). What must hold exactly: every parsed generated label
    (answered as its word, returned as its name) is the greedy walk down the answer tree that `score` reads,
    i.e. at each branch point its token has the highest next-token logit among the labels' tokens."""
    import torch

    out, _ = trained
    clf = LLMClassifier.load(out)
    labels, statuses = clf.predict_generate(TEXTS, fallback_label="off_topic", batch_size=4)
    shared, nodes, paths = clf._answer_tree()
    children: dict[int, list[int]] = {}
    for index, (_, parent, _) in enumerate(nodes):
        children.setdefault(parent, []).append(index)
    parsed = [i for i, s in enumerate(statuses) if s == "ok"]
    assert len(parsed) >= 4, statuses
    for i in parsed:
        path = paths[NAMES.index(labels[i])]
        ids = clf.tokens.prompt(clf.tokenizer, TEXTS[i]) + shared
        parent = -1
        for node in path:
            with torch.no_grad():
                logits = clf.model(input_ids=torch.tensor([ids])).logits[0, -1]
            options = children[parent]
            best = max(options, key=lambda n: float(logits[nodes[n][0]]))
            assert best == node, (TEXTS[i], labels[i])
            ids = ids + [nodes[node][0]]
            parent = node
    proba = clf.score(TEXTS)
    assert proba.shape == (6, 3) and np.allclose(proba.sum(1), 1)


def test_same_seed_same_adapter(trained, smollm_folder, tmp_path):
    out, _ = trained
    finetune(str(smollm_folder), "peft", TEXTS, GOLD, PROMPT_W, WORDS, SETTINGS, 0, tmp_path)
    from safetensors.torch import load_file

    a, b = load_file(out / "adapter_model.safetensors"), load_file(tmp_path / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_answer_tree_shares_common_tokens(tiny_llm_folder):
    model, tok = load_base(str(tiny_llm_folder), "peft", "none", 512)
    clf = LLMClassifier(model, tok, PROMPT, NAMES, 512)
    shared, nodes, paths = clf._answer_tree()
    assert tok.decode(shared).startswith('{"label": "')
    assert len(nodes) < sum(map(len, paths))  # pro_ukraine and pro_russia share their first tokens
    assert paths[0][0] == paths[1][0] and paths[0][0] != paths[2][0]
    texts = [tok.decode(shared + [nodes[n][0] for n in path]) for path in paths]
    assert [t.split('"')[-1] for t in texts] == NAMES  # the paths spell the names; the closing is left out


def test_shared_first_tokens_warn(tiny_llm_folder, caplog):
    _, tok = load_base(str(tiny_llm_folder), "peft", "none", 512)
    with caplog.at_level("WARNING", logger="commentclf.llm"):
        tokens = PromptTokens.build(tok, PROMPT, NAMES, max_length=400)
    assert first_token_groups(tokens.answers) == [["pro_ukraine", "pro_russia"]]
    assert "begin with the same token" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="commentclf.llm"):
        tokens = PromptTokens.build(tok, PROMPT_W, NAMES, max_length=400, words=WORDS)
    assert first_token_groups(tokens.answers) == [] and caplog.text == ""
    assert tok.decode(tokens.answers["pro_russia"][:-1]) == '{"label": "Russie"}'


def test_generated_words_map_back_to_label_names(tiny_llm_folder, monkeypatch):
    model, tok = load_base(str(tiny_llm_folder), "peft", "none", 512)
    clf = LLMClassifier(model, tok, PROMPT_W, NAMES, 512, WORDS)
    answers = ['{"label": "Russie"}', "Réponse : hors_sujet", '{"label": "pro_russia"}', ""]
    monkeypatch.setattr(clf, "generate_raw", lambda texts, *a, **k: answers[: len(texts)])
    labels, statuses = clf.predict_generate(TEXTS[:4], fallback_label="pro_ukraine")
    # the name is not an answer word any more: it fails and falls back (counted), as any other unknown word
    assert labels == ["pro_russia", "off_topic", "pro_ukraine", "pro_ukraine"]
    assert statuses == ["ok", "recovered", "failed", "failed"]


def test_load_defaults_to_the_training_quantisation(trained, caplog):
    out, _ = trained
    meta = json.loads((out / "commentclf.json").read_text())
    assert type(LLMClassifier.load(out).model).__name__ == "LlamaForCausalLM"  # none (from the file): merged
    meta["quantize"] = "4bit"
    (out / "commentclf.json").write_text(json.dumps(meta))
    try:
        with caplog.at_level("WARNING", logger="commentclf.llm"):
            LLMClassifier.load(out, quantize="none")
        assert "trained with quantize=4bit, loaded with quantize=none" in caplog.text
    finally:
        meta["quantize"] = "none"
        (out / "commentclf.json").write_text(json.dumps(meta))


def naive_logprobs(clf: LLMClassifier, text: str) -> np.ndarray:
    """Reference for `score`: each label's answer tokens (the ones `score` reads) scored by a full forward
    pass of its own, without cache, packing or batching."""
    import torch

    shared, nodes, paths = clf._answer_tree()
    context = clf.tokens.prompt(clf.tokenizer, text) + shared
    out = []
    for path in paths:
        answer = [nodes[node][0] for node in path]
        ids = torch.tensor([context + answer], device=clf.device)
        with torch.no_grad():
            logp = torch.log_softmax(clf.model(input_ids=ids).logits.float(), dim=-1)[0].cpu()
        at = list(range(len(context) - 1, len(context) + len(answer) - 1))
        out.append(float(logp[at, answer].sum()))
    return np.array(out)


def test_answer_words_need_not_be_ascii_but_must_round_trip(tiny_llm_folder):
    _, tok = load_base(str(tiny_llm_folder), "peft", "none", 512)
    words = {"pro_ukraine": "positif", "pro_russia": "négatif", "off_topic": "neutre"}
    tokens = PromptTokens.build(tok, classification_prompt(LABELS, "fr", "c", words), NAMES, 400, words)
    assert tok.decode(tokens.answers["pro_russia"][:-1]) == '{"label": "négatif"}'

    class Lossy:  # a tokenizer that maps unknown characters to one token loses the word
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, text, **kwargs):
            return self.inner(text.replace("é", "?"), **kwargs)

    with pytest.raises(LLMError, match="négatif"):
        PromptTokens.build(Lossy(tok), classification_prompt(LABELS, "fr", "c", words), NAMES, 400, words)
