"""The LLM classifier: LoRA/QLoRA fine-tuning of a causal LM that answers `{"label": "<name>"}`, and its two
prediction modes.

* `generate` — greedy decoding, parsed by `parsing.parse_label` (never raises); a failed parse falls back to
  `fallback_label` (by default the most frequent training label) and is counted.
* `score`    — one forward pass per comment that reads the log-probability of every label's whole answer
  (`{"label": "x"}` + eos) and normalises them into a distribution. The instruction prefix is the same for
  every comment, so its key/value cache is computed once and reused; the label answers, which share their
  first tokens, are packed as branches after the comment behind a tree-shaped attention mask. A batch is one
  unpadded row of comments, and `block_attention` lets each comment attend only to the prefix and itself.

Backends: `unsloth` (CUDA + the `gpu` extra; 4-bit QLoRA as in the original) or `peft` (peft + trl on CPU
or GPU; fp32/bf16 LoRA, or QLoRA through bitsandbytes with `quantize: 4bit`). `auto` picks unsloth only
where it can run. Only the adapter is saved.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from commentclf.parsing import parse_label
from commentclf.prompts import ClassificationPrompt, label_completion
from commentclf.seeding import canonical_json

log = logging.getLogger(__name__)


class LLMError(RuntimeError):
    """The LLM stage cannot run as configured."""


# --------------------------------------------------------------------------------------------------
# Backend choice
# --------------------------------------------------------------------------------------------------


def choose_backend(requested: str, cuda: bool | None = None, unsloth_installed: bool | None = None) -> str:
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if unsloth_installed is None:
        unsloth_installed = importlib.util.find_spec("unsloth") is not None
    if requested == "auto":
        return "unsloth" if cuda and unsloth_installed else "peft"
    if requested == "unsloth" and not cuda:
        raise LLMError("llm.backend=unsloth needs a CUDA GPU; use backend: peft (or auto) on CPU")
    if requested == "unsloth" and not unsloth_installed:
        raise LLMError("llm.backend=unsloth needs the gpu extra: pip install -e '.[gpu]' (CUDA hosts only)")
    return requested


def import_unsloth_first() -> None:
    """unsloth patches transformers, trl and peft: it must be imported before any of them."""
    import unsloth  # noqa: F401


# --------------------------------------------------------------------------------------------------
# Tokenised prompts: the same token ids for training, generate and score
# --------------------------------------------------------------------------------------------------


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
                "at their first token (llm.answers in params)",
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


def training_rows(tokenizer, tokens: PromptTokens, texts: list[str], labels: list[str]) -> list[dict]:
    """Pre-tokenised prompt/completion rows: trl trains on the completion only (completion_mask)."""
    rows = []
    for text, label in zip(texts, labels):
        prompt = tokens.prompt(tokenizer, text)
        answer = tokens.answers[label]
        rows.append({"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)})
    return rows


def balance(texts: list[str], labels: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Oversample every label to the size of the largest, so the rare label weighs as much in the loss."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    target = max(map(len, by_label.values()))
    idx: list[int] = []
    for members in by_label.values():
        idx += members + list(rng.choice(members, target - len(members), replace=True))
    idx = list(rng.permutation(idx))
    return [texts[i] for i in idx], [labels[i] for i in idx]


# --------------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: list[str]
    lr: float
    epochs: float
    batch_size: int
    grad_accum: int
    max_length: int
    warmup_ratio: float
    quantize: str
    seed: int


def load_base(model_name: str, backend: str, quantize: str, max_length: int):
    """(model, tokenizer) ready for LoRA: fp32 on CPU, bf16 on GPU, 4-bit NF4 for QLoRA."""
    import torch

    if backend == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name, max_seq_length=max_length, load_in_4bit=quantize == "4bit", dtype=None
        )
        return model, tokenizer

    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(model_name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    kwargs = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if quantize == "4bit":
        # compute dtype bf16 for both the weights and the compute, else generate() fails on mixed dtypes.
        kwargs = {
            "dtype": torch.bfloat16,
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            ),
        }
    model = AutoModelForCausalLM.from_pretrained(model_name, **kwargs)
    if cuda and quantize != "4bit":
        model = model.to("cuda")
    return model, tokenizer


def finetune(
    model_name: str,
    backend: str,
    texts: list[str],
    labels: list[str],
    label_names: list[str],
    prompt: ClassificationPrompt,
    s: TrainSettings,
    out_dir: Path,
    words: dict[str, str] | None = None,
) -> dict:
    """Train a LoRA adapter on (text, label) and save the adapter (never a merged model) to `out_dir`.
    `words`: label name -> the word the model is taught to answer (default: the name)."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    # Seed before the LoRA matrices are created (SFTTrainer wraps the model before Trainer seeds itself).
    set_seed(s.seed)
    words = {name: (words or {}).get(name, name) for name in label_names}
    model, tokenizer = load_base(model_name, backend, s.quantize, s.max_length)
    tokens = PromptTokens.build(tokenizer, prompt, label_names, s.max_length, words)
    dataset = Dataset.from_list(training_rows(tokenizer, tokens, texts, labels))

    peft_config = None
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        model = FastLanguageModel.get_peft_model(
            model,
            r=s.lora_r,
            lora_alpha=s.lora_alpha,
            lora_dropout=s.lora_dropout,
            target_modules=s.target_modules,
            bias="none",
            use_gradient_checkpointing=False,
            random_state=s.seed,
        )
    else:
        from peft import LoraConfig, prepare_model_for_kbit_training

        if s.quantize == "4bit":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        peft_config = LoraConfig(
            r=s.lora_r,
            lora_alpha=s.lora_alpha,
            lora_dropout=s.lora_dropout,
            target_modules=s.target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        )
    cuda = torch.cuda.is_available()
    # trl's default loss ("chunked_nll") projects only the answer tokens through the LM head, reading hidden
    # states from `model.base_model`. For Gemma-3 text models under transformers 4.x `base_model` resolves to
    # the whole causal LM (its prefix names the multimodal wrapper's attribute), which returns logits and
    # crashes trl; point it at the decoder (plain "nll" also works, but runs the 262k-word head over every
    # prompt token). Same loss either way: the first logged step is 2.4085 with both on RUW.
    if model.base_model is model and isinstance(getattr(model, "model", None), torch.nn.Module):
        model.base_model_prefix = "model"
    args = SFTConfig(
        output_dir=str(out_dir / "_trainer"),
        num_train_epochs=s.epochs,
        learning_rate=s.lr,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        warmup_ratio=s.warmup_ratio,
        lr_scheduler_type="linear",
        max_length=s.max_length,
        completion_only_loss=True,
        seed=s.seed,
        data_seed=s.seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=cuda,
        use_cpu=not cuda,
        gradient_checkpointing=False,  # trl defaults to True, which halves speed on small models
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    trainer.model.save_pretrained(str(out_dir))  # a PeftModel saves the adapter only
    tokenizer.save_pretrained(str(out_dir))
    canonical_json(out_dir / "adapter_config.json", sorted_lists=("target_modules",))
    (out_dir / "commentclf.json").write_text(
        json.dumps(
            {
                "base_model": model_name,
                "labels": label_names,
                "answers": words,
                "quantize": s.quantize,  # an adapter trained on a 4-bit base is scored on a 4-bit base
                "max_length": s.max_length,
                "prompt_prefix": prompt.prefix,
                "prompt_suffix": prompt.suffix,
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "train_seconds": round(seconds, 1),
        "train_rows": len(texts),
        "steps": result.global_step,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }


# --------------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Attention for score's packed rows
# --------------------------------------------------------------------------------------------------

BLOCK_ATTENTION = "commentclf_blocks"


def block_attention(module, query, key, value, attention_mask, packed_blocks=None, **kwargs):
    """SDPA that, for a packed `score` row, computes attention comment by comment.

    `packed_blocks` = (prefix length, [(offset, length) of each comment in the row]). One mask over the whole
    row would score every query against every key of the row (8 comments wide: most of them masked out);
    here a comment's queries meet only the cached prefix and the comment's own keys. Same result, less
    attention work: `score` 14 / 18 / 42 % faster at batch 8 / 16 / 32 (RUW adapter, 60 tweets). Without `packed_blocks`
    (generate, a plain forward pass) it is transformers' SDPA attention unchanged.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if packed_blocks is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    import torch

    p, blocks = packed_blocks
    outputs = []
    for o, n in blocks:
        own = slice(p + o, p + o + n)  # the comment's keys (after the prefix's p)
        k = torch.cat([key[:, :, :p], key[:, :, own]], 2)
        v = torch.cat([value[:, :, :p], value[:, :, own]], 2)
        m = torch.cat([attention_mask[:, :, o : o + n, :p], attention_mask[:, :, o : o + n, own]], 3)
        outputs.append(sdpa_attention_forward(module, query[:, :, o : o + n], k, v, m, **kwargs)[0])
    return torch.cat(outputs, 1), None  # (batch, tokens, heads, head dim), as sdpa_attention_forward


def use_block_attention(model) -> bool:
    """Switch an SDPA model to `block_attention` (registered once with transformers); False if the model
    uses another attention (eager, flash, a patched one), which `score` then keeps with one mask per row."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    if model.config._attn_implementation == BLOCK_ATTENTION:
        return True
    if model.config._attn_implementation != "sdpa":
        return False
    AttentionInterface.register(BLOCK_ATTENTION, block_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(BLOCK_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # SDPA's masks
    model.set_attn_implementation(BLOCK_ATTENTION)
    return True


class LLMClassifier:
    def __init__(
        self,
        model,
        tokenizer,
        prompt: ClassificationPrompt,
        labels: list[str],
        max_length: int,
        words: dict[str, str] | None = None,
    ):
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.words = {name: (words or {}).get(name, name) for name in labels}  # label -> answer word
        self.tokens = PromptTokens.build(tokenizer, prompt, labels, max_length, self.words)
        self.device = next(model.parameters()).device
        # CPU only: there attention costs FLOPs that blocks save; on a GPU one masked kernel over the row is
        # cheap and a loop over comments adds kernel launches (the GPU path stays as measured, one mask).
        self.block_attention = self.device.type == "cpu" and use_block_attention(model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._torch = torch
        self._prefix_cache = None

    @classmethod
    def load(cls, adapter_dir: str | Path, base_model: str | None = None, quantize: str | None = None):
        """Load base model + adapter saved by `finetune` (works for adapters trained by either backend).

        `quantize` None: the base as it was trained (4-bit for QLoRA). A QLoRA adapter learns the error of
        the 4-bit weights too: on the GPU check, the same SmolLM2 adapter scored dev macro-F1 0.451 on its
        4-bit base and 0.184 (one label for everything) merged into the bf16 base."""
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        meta = json.loads((adapter_dir / "commentclf.json").read_text())
        trained = meta.get("quantize", "none")
        if quantize is None:
            quantize = trained
        elif quantize != trained:
            log.warning(
                "adapter %s was trained with quantize=%s, loaded with quantize=%s", adapter_dir, trained, quantize
            )
        model, tokenizer = load_base(base_model or meta["base_model"], "peft", quantize, meta["max_length"])
        model = PeftModel.from_pretrained(model, str(adapter_dir))
        if quantize == "none":
            # Fold the LoRA weights into the base matrices: same outputs, no extra matmuls per layer.
            model = model.merge_and_unload()
        prompt = ClassificationPrompt(meta["prompt_prefix"], meta["prompt_suffix"])
        return cls(model, tokenizer, prompt, meta["labels"], meta["max_length"], meta.get("answers"))

    # ---- generate ---------------------------------------------------------------------------------

    def generate_raw(self, texts: list[str], batch_size: int = 8, max_new_tokens: int = 16) -> list[str]:
        torch = self._torch
        prompts = [self.tokens.prompt(self.tokenizer, t) for t in texts]
        # Batches of similar length waste less compute on padding (as in `score`); outputs keep the input order.
        order = sorted(range(len(texts)), key=lambda i: len(prompts[i]))
        outputs: list[str] = [""] * len(texts)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            ids = [prompts[i] for i in rows]
            width = max(map(len, ids))
            # left padding: every prompt ends where generation starts
            input_ids = torch.tensor([[self.pad_id] * (width - len(x)) + x for x in ids], device=self.device)
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.pad_id,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
            for i, text in zip(rows, self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)):
                outputs[i] = text
        return outputs

    def predict_generate(
        self, texts: list[str], fallback_label: str, batch_size: int = 8, max_new_tokens: int = 16
    ) -> tuple[list[str], list[str]]:
        """(labels, statuses); a failed parse becomes `fallback_label` with status 'failed'."""
        by_word = {word: name for name, word in self.words.items()}
        outputs = self.generate_raw(texts, batch_size, max_new_tokens)
        parsed = [parse_label(o, list(by_word)) for o in outputs]
        return [by_word.get(p.label, fallback_label) for p in parsed], [p.status for p in parsed]

    # ---- score --------------------------------------------------------------------------------------

    def _prefix_kv(self):
        if self._prefix_cache is None:
            torch = self._torch
            ids = torch.tensor([self.tokens.prefix], device=self.device)
            with torch.no_grad():
                cache = self.model(input_ids=ids, use_cache=True).past_key_values
            self._prefix_cache = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefix_cache

    def _answer_tree(self) -> tuple[list[int], list[tuple[int, int, int]], list[list[int]]]:
        """The label answers as a token trie.

        Returns the start all answers share (e.g. `{"label": "`), the trie nodes (token, parent, depth) of
        what follows, and each label's path of node indices. Labels that share tokens (`pro_ukraine`,
        `pro_russia`: "pro", "_") share nodes, so each token is computed once. The common end (`"}` + eos)
        carries no information once the name is known and is left out, unless one name would then be a
        prefix of another.
        """
        answers = [self.tokens.answers[name] for name in self.labels]
        common = common_start(answers)
        tails = [a[common:] for a in answers]
        k = 0
        while all(len(t) > k + 1 for t in tails) and len({t[-1 - k] for t in tails}) == 1:
            k += 1
        stripped = [t[: len(t) - k] for t in tails]
        if any(a != b and b[: len(a)] == a for a in stripped for b in stripped):
            stripped = tails
        nodes: list[tuple[int, int, int]] = []
        index: dict[tuple[int, int], int] = {}
        paths = []
        for tail in stripped:
            parent, path = -1, []
            for depth, token in enumerate(tail):
                if (parent, token) not in index:
                    index[(parent, token)] = len(nodes)
                    nodes.append((token, parent, depth))
                parent = index[(parent, token)]
                path.append(parent)
            paths.append(path)
        return answers[0][:common], nodes, paths

    def score_logprobs(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """(n, n_labels) log-probability of each label's answer given prompt + comment (up to a constant
        shared by all labels: the common start and end of the answers)."""
        from transformers import DynamicCache

        torch = self._torch
        shared, nodes, paths = self._answer_tree()
        prefix_kv = self._prefix_kv()
        p = len(self.tokens.prefix)
        # ancestor[q, k]: trie node k is node q or one of its ancestors (what q may attend to)
        ancestor = torch.eye(len(nodes), dtype=torch.bool)
        for q, (_, parent, _) in enumerate(nodes):
            if parent >= 0:
                ancestor[q] |= ancestor[parent]
        # Only nodes with children are fed: a leaf's probability is read at its parent, and nothing is read
        # after it (one-token answers such as "Russia" or "neutral" cost no extra position at all).
        fed = sorted({parent for _, parent, _ in nodes if parent >= 0})
        slot = {node: j for j, node in enumerate(fed)}
        ancestor = ancestor[fed][:, fed]
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        # A batch is packed into ONE row: its comments follow each other, each with its own positions (all
        # start right after the prefix) and a block of the attention mask, so no token is padding and the
        # cached prefix is used as it is, never copied per comment.
        all_contexts = [self.comment_context(t) + shared for t in texts]
        for start in range(0, len(texts), batch_size):
            rows = range(start, min(start + batch_size, len(texts)))
            seq: list[int] = []
            positions: list[int] = []
            blocks, reads = [], []
            for i in rows:
                ctx, o = all_contexts[i], len(seq)
                c = len(ctx)
                seq += list(ctx) + [nodes[node][0] for node in fed]
                positions += list(range(p, p + c)) + [p + c + nodes[node][2] for node in fed]
                blocks.append((o, c))
                # logits at a position predict the next token: a label's first token is read at the
                # comment's last position, each later token at its parent node.
                reads.append([[o + c - 1] + [o + c + slot[node] for node in path[:-1]] for path in paths])
            width = len(seq)
            mask = torch.zeros((1, 1, width, p + width), dtype=torch.bool)
            mask[..., :p] = True  # everyone sees the cached instruction prefix
            for o, c in blocks:
                n = c + len(fed)
                block = mask[0, 0, o : o + n, p + o : p + o + n]
                block[:c, :c] = torch.ones((c, c), dtype=torch.bool).tril()  # the comment: causal
                block[c:, :c] = True  # every answer token sees the whole comment
                block[c:, c:] = ancestor  # ... and its own earlier answer tokens, never a sibling's
            keep = sorted({q for read in reads for at in read for q in at})
            cache = DynamicCache()
            for layer, (k, v) in enumerate(prefix_kv):
                cache.update(k, v, layer)
            # block_attention reads the blocks and skips the mask's off-block zeros
            blocked = {"packed_blocks": (p, [(o, c + len(fed)) for o, c in blocks])} if self.block_attention else {}
            with torch.no_grad():
                logits = self.model(
                    input_ids=torch.tensor([seq], device=self.device),
                    position_ids=torch.tensor([positions], device=self.device),
                    attention_mask=mask.to(self.device),
                    past_key_values=cache,
                    use_cache=True,
                    cache_position=torch.arange(p, p + width, device=self.device),
                    # the vocabulary projection only where an answer token is read (a few per comment)
                    logits_to_keep=torch.tensor(keep, device=self.device),
                    **blocked,
                ).logits
            logp = torch.log_softmax(logits[0].float(), dim=-1).cpu()
            column = {q: j for j, q in enumerate(keep)}
            for i, read in zip(rows, reads):
                for j, (path, at) in enumerate(zip(paths, read)):
                    tokens = [nodes[node][0] for node in path]
                    out[i, j] = float(logp[[column[q] for q in at], tokens].sum())  # (position, token) pairs
        return out

    def comment_context(self, text: str) -> list[int]:
        """The per-comment tokens that follow the cached prefix: comment + response header."""
        return self.tokens.comment(self.tokenizer, text) + self.tokens.suffix

    def score(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """(n, n_labels) probabilities over the labels (softmax of the answers' log-probabilities)."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        lp = self.score_logprobs(texts, batch_size)
        lp -= lp.max(axis=1, keepdims=True)
        p = np.exp(lp)
        return p / p.sum(axis=1, keepdims=True)

    def naive_logprobs(self, text: str) -> np.ndarray:
        """Reference for tests: each label's answer tokens (the ones `score` reads) scored by a full forward
        pass of its own, without cache, packing or batching."""
        torch = self._torch
        shared, nodes, paths = self._answer_tree()
        context = self.tokens.prompt(self.tokenizer, text) + shared
        out = []
        for path in paths:
            answer = [nodes[node][0] for node in path]
            ids = torch.tensor([context + answer], device=self.device)
            with torch.no_grad():
                logp = torch.log_softmax(self.model(input_ids=ids).logits.float(), dim=-1)[0].cpu()
            at = list(range(len(context) - 1, len(context) + len(answer) - 1))
            out.append(float(logp[at, answer].sum()))
        return np.array(out)
