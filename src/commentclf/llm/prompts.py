"""Every LLM prompt of the pipeline, per language. Labels and their descriptions come from params.

Two prompts:
* the classification prompt (Alpaca-style, as in the original): an instruction listing every label with
  its description, then `### Comment:` and the text, then `### Response:`; the answer is `{"label": "<word>"}`
  (`labels[].answer`, by default the label's name).
  It is split into a *prefix* identical for every comment, the comment, and a *suffix*, and each part is
  tokenised on its own, so training, `generate` and `score` (which caches the prefix) see the same tokens;
* the synthetic-generation prompt: a short neutral context, the label's description, ONE real example of
  that label as JSON, and the request for a new comment as JSON `{"text": ..., "label": ...}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from commentclf.config import Label

TEMPLATES = {
    "fr": {
        "cls_instruction": (
            "### Instruction:\n"
            "Tu es un expert de l'analyse d'opinion. {context}\n"
            "Classe le commentaire dans une seule de ces catégories :\n"
            "{label_lines}\n"
            'Réponds uniquement en JSON : {{"label": "<catégorie>"}}.\n\n'
            "### Comment:\n"
        ),
        "cls_suffix": "\n\n### Response:\n",
        "synth": (
            "{context}\n"
            "Catégorie « {name} » : {description}\n"
            "Voici un vrai commentaire de cette catégorie :\n"
            "{example}\n"
            "Écris un nouveau commentaire de lecteur, différent mais de la même catégorie, dans le même "
            'style. Réponds uniquement en JSON : {{"text": "<commentaire>", "label": "{name}"}}'
        ),
    },
    "en": {
        "cls_instruction": (
            "### Instruction:\n"
            "You are an expert in opinion analysis. {context}\n"
            "Classify the comment into exactly one of these categories:\n"
            "{label_lines}\n"
            'Answer only in JSON: {{"label": "<category>"}}.\n\n'
            "### Comment:\n"
        ),
        "cls_suffix": "\n\n### Response:\n",
        "synth": (
            "{context}\n"
            'Category "{name}": {description}\n'
            "Here is a real comment of this category:\n"
            "{example}\n"
            "Write a new comment, different but of the same category, in the same style. "
            'Answer only in JSON: {{"text": "<comment>", "label": "{name}"}}'
        ),
    },
    "de": {
        "cls_instruction": (
            "### Instruction:\n"
            "Du bist Experte für Meinungsanalyse. {context}\n"
            "Ordne den Kommentar genau einer dieser Kategorien zu:\n"
            "{label_lines}\n"
            'Antworte nur in JSON: {{"label": "<Kategorie>"}}.\n\n'
            "### Comment:\n"
        ),
        "cls_suffix": "\n\n### Response:\n",
        "synth": (
            "{context}\n"
            "Kategorie „{name}“: {description}\n"
            "Hier ist ein echter Kommentar dieser Kategorie:\n"
            "{example}\n"
            "Schreibe einen neuen Kommentar auf Deutsch, anders, aber aus derselben Kategorie und im selben Stil. "
            'Antworte nur in JSON: {{"text": "<Kommentar>", "label": "{name}"}}'
        ),
    },
}

# The generation answer is started for the model: the first thing it writes is the comment itself, which
# removes chatty preambles ("Sure! Here is...") — the original lost much of its output to those.
SYNTH_ANSWER_START = '{"text": "'


def _label_lines(labels: list[Label], answers: dict[str, str]) -> str:
    return "\n".join(f"- {answers.get(label.name, label.name)} : {label.description}" for label in labels)


# Every classification template ends its prefix with this header, so examples can be chained before the comment.
COMMENT_HEADER = "### Comment:\n"
# What the answer opens with; a prompt ending with it makes the label's answer word the next token.
ANSWER_START = '{"label": "'


@dataclass(frozen=True)
class ClassificationPrompt:
    prefix: str
    suffix: str

    def full(self, text: str) -> str:
        return self.prefix + text + self.suffix

    def with_examples(self, examples: list[tuple[str, str]]) -> ClassificationPrompt:
        """The same prompt with answered examples (text, answer word) between the instruction and the comment
        (k-shot): each is a comment block followed by its answer, in the format the model is asked for."""
        shown = "".join(
            text + self.suffix + label_completion(answer) + "\n\n" + COMMENT_HEADER for text, answer in examples
        )
        return ClassificationPrompt(self.prefix + shown, self.suffix)


def classification_prompt(
    labels: list[Label], language: str, context: str, answers: dict[str, str] | None = None
) -> ClassificationPrompt:
    """`answers`: label name -> the word the model answers for it (llm.answers; default: the name)."""
    t = TEMPLATES[language]
    return ClassificationPrompt(
        prefix=t["cls_instruction"].format(context=context, label_lines=_label_lines(labels, answers or {})),
        suffix=t["cls_suffix"],
    )


def label_completion(name: str) -> str:
    """The answer the classifier is trained to give (trl/our tokeniser appends eos)."""
    return json.dumps({"label": name}, ensure_ascii=False)


def synth_prompt(label: Label, example_text: str, language: str, context: str) -> str:
    example = json.dumps({"text": example_text, "label": label.name}, ensure_ascii=False)
    return TEMPLATES[language]["synth"].format(
        context=context, name=label.name, description=label.description, example=example
    )
