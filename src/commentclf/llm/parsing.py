"""Parsers for LLM output. They never raise: garbage in gives a counted failure out.

The original parsed a bare digit with a regex that could return a non-label; one unparsable answer broke
its metrics. Here every outcome is one of three statuses, and callers count them:
* `ok`        — valid JSON object whose "label" is one of the labels;
* `recovered` — no valid JSON, but exactly one label name appears in the text as a word: we take it;
* `failed`    — anything else: `label` is None and the caller applies its documented fallback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


def _as_text(output) -> str:
    if output is None:
        return ""
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return str(output)


@dataclass(frozen=True)
class ParsedLabel:
    label: str | None
    status: str  # "ok" | "recovered" | "failed"


def parse_label(output, labels: list[str]) -> ParsedLabel:
    text = _as_text(output)
    for match in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("label"), str) and obj["label"].strip() in labels:
            return ParsedLabel(obj["label"].strip(), "ok")
    # Longest names first so that "pro_russia_strong" is not also counted as "pro_russia".
    found = {
        name
        for name in sorted(labels, key=len, reverse=True)
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
    }
    if len(found) == 1:
        return ParsedLabel(found.pop(), "recovered")
    return ParsedLabel(None, "failed")


@dataclass(frozen=True)
class ParsedSynth:
    text: str | None
    label: str | None
    reason: str  # "ok" | "truncated" | "unparsable" | "missing_label"


def parse_synth(output, truncated: bool = False) -> ParsedSynth:
    """Parse a generated `{"text": ..., "label": ...}` object. `truncated`: generation hit max_new_tokens."""
    text = _as_text(output).strip()
    start = text.find("{")
    obj = None
    if start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
        except (ValueError, RecursionError):
            obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return ParsedSynth(None, None, "truncated" if truncated else "unparsable")
    label = obj.get("label")
    if not isinstance(label, str) or not label.strip():
        return ParsedSynth(obj["text"], None, "missing_label")
    return ParsedSynth(obj["text"], label.strip(), "ok")
