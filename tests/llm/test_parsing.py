import os
import random

import pytest

from commentclf.llm.parsing import parse_label, parse_synth

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]


@pytest.mark.parametrize(
    "output,label,status",
    [
        ('{"label": "pro_russia"}', "pro_russia", "ok"),
        ('  {"label": "off_topic"}<|im_end|> trailing', "off_topic", "ok"),
        ('Réponse : {"label": " pro_ukraine "}', "pro_ukraine", "ok"),
        ('{"label": "pro_mars"}', None, "failed"),  # a wrong label
        ('{"label": "pro_russia"', "pro_russia", "recovered"),  # truncated JSON, one label named
        ('{"label": ', None, "failed"),  # truncated, no label
        ("", None, "failed"),  # empty
        (None, None, "failed"),
        ("pro_russia or pro_ukraine", None, "failed"),  # ambiguous
        ('{"label": ["pro_russia"]}', "pro_russia", "recovered"),  # wrong type, but one label named
        ("la catégorie est off_topic.", "off_topic", "recovered"),
        ("pro_russiaX", None, "failed"),  # not a whole word
        ('{"label": {"label": "pro_russia"}}', "pro_russia", "ok"),  # the inner object is valid
    ],
)
def test_parse_label(output, label, status):
    parsed = parse_label(output, LABELS)
    assert (parsed.label, parsed.status) == (label, status)


def test_parse_label_never_raises_on_garbage():
    rng = random.Random(0)
    for _ in range(300):
        blob = os.urandom(rng.randint(0, 200))
        assert parse_label(blob, LABELS).status in ("ok", "recovered", "failed")
        assert parse_label(blob.decode("latin-1"), LABELS).label in (None, *LABELS)
    assert parse_label("{" * 5000 + "}" * 5000, LABELS).status == "failed"


@pytest.mark.parametrize(
    "output,truncated,reason",
    [
        ('{"text": "Un commentaire.", "label": "off_topic"}', False, "ok"),
        ('{"text": "Un commentaire coupé', True, "truncated"),
        ('{"text": "Un commentaire coupé', False, "unparsable"),
        ("Bien sûr ! Voici un commentaire.", False, "unparsable"),
        ('{"text": "sans étiquette"}', False, "missing_label"),
        ('{"text": 42, "label": "off_topic"}', False, "unparsable"),
        (b"\xff\xfe\x00", False, "unparsable"),
    ],
)
def test_parse_synth(output, truncated, reason):
    assert parse_synth(output, truncated).reason == reason
