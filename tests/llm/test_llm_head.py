"""The LLM as a classifier head (llm.head: classifier), on a tiny random Llama with SmolLM2's tokenizer."""

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from commentclf.llm.head import HeadClassifier, finetune_head, load_llm
from conftest import section

NAMES = ["pro_ukraine", "pro_russia", "off_topic"]
TEXTS = [
    "Armons l'Ukraine !",
    "L'OTAN a provoqué Moscou.",
    "Le site est lent ce matin.",
    "Slava Ukraini, tenez bon.",
    "Levez les sanctions, on paie tout.",
    "Quelle belle photo.",
]
GOLD = ["pro_ukraine", "pro_russia", "off_topic"] * 2
SETTINGS = section(
    "llm",
    head="classifier",
    lora_r=8,
    lora_alpha=16,
    lora_dropout=0.0,
    target_modules=["q_proj", "v_proj"],
    lr=1e-2,
    epochs=30,
    batch_size=6,
    grad_accum=1,
    max_length=64,
    warmup_ratio=0.0,
    quantize="none",
)


@pytest.fixture(scope="module")
def head(tiny_llm_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("head")
    info, curve = finetune_head(str(tiny_llm_folder), TEXTS, GOLD, NAMES, SETTINGS, 0, out)
    return out, info, curve


def test_head_learns_the_seed_and_saves_the_adapter_and_head_only(head):
    out, info, curve = head
    assert len(curve) == info["steps"] and info["last_loss"] < info["first_loss"] / 4
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    meta = json.loads((out / "commentclf.json").read_text())
    assert meta["head"] == "classifier" and meta["labels"] == NAMES
    # the fresh score layer is saved whole beside the LoRA matrices, or a reload would start from noise
    assert any("score" in k for k in load_file(out / "adapter_model.safetensors"))
    clf = load_llm(out)
    assert isinstance(clf, HeadClassifier)
    proba = clf.score(TEXTS, batch_size=4)
    assert proba.shape == (6, 3) and np.allclose(proba.sum(1), 1)
    assert [NAMES[i] for i in proba.argmax(1)] == GOLD


def test_padding_never_changes_a_score(head):
    """Batches are right-padded; the head must read each comment's own last token, not a pad."""
    clf = load_llm(head[0])
    alone = clf.score(["Quelle belle photo."], batch_size=1)
    padded = clf.score(
        ["Quelle belle photo.", "Levez les sanctions, on paie tout, et vite, avant l'hiver."], batch_size=2
    )
    assert np.allclose(alone[0], padded[0], atol=1e-5)


def test_same_seed_same_head(head, tiny_llm_folder, tmp_path):
    finetune_head(str(tiny_llm_folder), TEXTS, GOLD, NAMES, SETTINGS, 0, tmp_path)
    a, b = load_file(head[0] / "adapter_model.safetensors"), load_file(tmp_path / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
