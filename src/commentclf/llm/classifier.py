"""`LLMClassifier`: a fine-tuned adapter on its base model, and its two prediction modes.

* `generate` — greedy decoding, parsed by `parsing.parse_label` (never raises); a failed parse falls back to
  `fallback_label` (by default the most frequent training label) and is counted.
* `score`    — one forward pass per comment that reads the log-probability of every label's whole answer
  (`{"label": "x"}` + eos) and normalises them into a distribution. The instruction prefix is the same for
  every comment, so its key/value cache is computed once and reused; the label answers, which share their
  first tokens, are packed as branches after the comment behind a tree-shaped attention mask. A batch is one
  unpadded row of comments, and `block_attention` lets each comment attend only to the prefix and itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from commentclf.llm.attention import use_block_attention
from commentclf.llm.backend import load_base
from commentclf.llm.parsing import parse_label
from commentclf.llm.prompts import ClassificationPrompt
from commentclf.llm.tokens import PromptTokens, common_start

log = logging.getLogger(__name__)


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
        # cheap and a loop over comments adds kernel launches (docs/design.md).
        self.block_attention = self.device.type == "cpu" and use_block_attention(model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._torch = torch
        self._prefix_cache = None

    @classmethod
    def load(cls, adapter_dir: str | Path, base_model: str | None = None, quantize: str | None = None):
        """Load base model + adapter saved by `finetune` (works for adapters trained by either backend).

        `quantize` None: the base as it was trained (4-bit for QLoRA). A QLoRA adapter learns the error of
        the 4-bit weights too, and merged into a bf16 base it can answer one label for everything
        (docs/design.md)."""
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
