"""Tokenised prompts: the same token ids for training, `generate` and `score`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from commentclf.errors import LLMError
from commentclf.llm.prompts import ClassificationPrompt, label_completion

log = logging.getLogger(__name__)


@dataclass
class PromptTokens:
    prefix: list[int]
    suffix: list[int]
    answers: dict[str, list[int]]  # label -> answer ids, eos included
    max_length: int

    @classmethod
    def build(
        cls,
        tokenizer,
        prompt: ClassificationPrompt,
        labels: list[str],
        max_length: int,
        words: dict[str, str] | None = None,
    ) -> PromptTokens:
        """`words`: label name -> the word written in the answer (default: the name)."""
        words = words or {}
        for word in words.values():  # an answer the tokenizer cannot spell would be unlearnable
            if tokenizer.decode(tokenizer(word, add_special_tokens=False)["input_ids"]) != word:
                raise LLMError(f"answer word {word!r} does not survive this LLM's tokenizer; choose another word")
        prefix = tokenizer(prompt.prefix)["input_ids"]  # with the tokenizer's own leading special token, if any
        suffix = tokenizer(prompt.suffix, add_special_tokens=False)["input_ids"]
        answers = {
            name: tokenizer(label_completion(words.get(name, name)), add_special_tokens=False)["input_ids"]
            + [tokenizer.eos_token_id]
            for name in labels
        }
        longest = max(map(len, answers.values()))
        if len(prefix) + len(suffix) + longest + 8 > max_length:
            raise LLMError(
                f"llm.max_length={max_length} leaves no room for the comment: the instruction alone "
                f"takes {len(prefix) + len(suffix) + longest} tokens"
            )
        shared = first_token_groups(answers)
        if shared:
            log.warning(
                "LLM answers %s begin with the same token: greedy `generate` picks that token on the labels' "
                "summed probability and can then disagree with `score`; give the labels answers that differ "
                "at their first token (labels[].answer in params)",
                shared,
            )
        return cls(prefix, suffix, answers, max_length)

    def comment(self, tokenizer, text: str) -> list[int]:
        """Comment ids, cut so that prompt + longest answer fit max_length (long comments keep their start)."""
        budget = self.max_length - len(self.prefix) - len(self.suffix) - max(map(len, self.answers.values()))
        return tokenizer(text, add_special_tokens=False)["input_ids"][:budget]

    def prompt(self, tokenizer, text: str) -> list[int]:
        return self.prefix + self.comment(tokenizer, text) + self.suffix


def common_start(answers: list[list[int]]) -> int:
    """How many leading tokens every answer shares (`{"label": "`), leaving each at least one of its own."""
    common = 0
    while all(len(a) > common + 1 for a in answers) and len({a[common] for a in answers}) == 1:
        common += 1
    return common


def first_token_groups(answers: dict[str, list[int]]) -> list[list[str]]:
    """Labels whose answers, after the start they all share (`{"label": "`), begin with the same token."""
    common = common_start(list(answers.values()))
    groups: dict[int, list[str]] = {}
    for name, a in answers.items():
        groups.setdefault(a[common], []).append(name)
    return [names for names in groups.values() if len(names) > 1]
