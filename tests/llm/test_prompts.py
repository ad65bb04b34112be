import json

from commentclf.config import Label
from commentclf.llm.prompts import SYNTH_ANSWER_START, classification_prompt, label_completion, synth_prompt

LABELS = [
    Label(name="pro_ukraine", description="soutient l'Ukraine"),
    Label(name="pro_russia", description="penche du côté russe"),
    Label(name="off_topic", description="hors sujet"),
]


def test_classification_prompt_french():
    p = classification_prompt(LABELS, "fr", "Commentaires du Monde.")
    full = p.full("Un commentaire « test ».")
    assert full.startswith("### Instruction:\nTu es un expert")
    assert "Commentaires du Monde." in full
    for label in LABELS:
        assert f"- {label.name} : {label.description}" in p.prefix
    assert full.endswith("### Comment:\nUn commentaire « test ».\n\n### Response:\n")
    assert "Réponds uniquement en JSON" in p.prefix


def test_classification_prompt_english_and_prefix_is_shared():
    p = classification_prompt(LABELS, "en", "Tweets.")
    assert "Classify the comment into exactly one of these categories" in p.prefix
    assert p.full("a").startswith(p.prefix) and p.full("b").startswith(p.prefix)


def test_answer_words_replace_names_in_the_label_list():
    words = {"pro_ukraine": "Ukraine", "pro_russia": "Russia", "off_topic": "neutral"}
    p = classification_prompt(LABELS, "en", "Tweets.", words)
    assert "- Russia : penche du côté russe" in p.prefix and "pro_russia" not in p.prefix


def test_completion_is_json():
    assert json.loads(label_completion("pro_russia")) == {"label": "pro_russia"}


def test_synth_prompt_has_one_example_and_the_label_description():
    fr = synth_prompt(LABELS[1], 'L\'OTAN "provoque"', "fr", "Contexte neutre.")
    assert fr.count('"label": "pro_russia"') == 2  # the example and the requested answer format
    assert "penche du côté russe" in fr and 'L\'OTAN \\"provoque\\"' in fr  # example JSON-escaped
    en = synth_prompt(LABELS[0], "Slava Ukraini", "en", "Neutral context.")
    assert "Write a new comment" in en and "soutient l'Ukraine" in en
    assert json.loads(SYNTH_ANSWER_START + 'x", "label": "off_topic"}') == {"text": "x", "label": "off_topic"}


def test_every_language_has_both_prompts_in_the_same_shape():
    from commentclf.llm.prompts import TEMPLATES

    for language in TEMPLATES:
        p = classification_prompt(LABELS, language, "Kontext.")
        # the markers the answer parser and the cached prefix rely on are the same in every language
        assert p.prefix.startswith("### Instruction:\n") and p.prefix.endswith("### Comment:\n")
        assert p.suffix == "\n\n### Response:\n" and '{"label": ' in p.prefix and "Kontext." in p.prefix
        synth = synth_prompt(LABELS[2], "Ein Beispiel", language, "Kontext.")
        assert synth.count('"label": "off_topic"') == 2 and "hors sujet" in synth
    assert "auf Deutsch" in synth_prompt(LABELS[0], "x", "de", "")
