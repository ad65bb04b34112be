"""Attention for `score`'s packed rows: each comment attends to the cached prefix and to itself only."""

from __future__ import annotations

BLOCK_ATTENTION = "commentclf_blocks"


def block_attention(module, query, key, value, attention_mask, packed_blocks=None, **kwargs):
    """SDPA that, for a packed `score` row, computes attention comment by comment.

    `packed_blocks` = (prefix length, [(offset, length) of each comment in the row]). One mask over the whole
    row would score every query against every key of the row (most of them masked out); here a comment's
    queries meet only the cached prefix and the comment's own keys. Same result, less attention work, and
    the saving grows with the batch. Without `packed_blocks` (generate, a plain forward pass) it is
    transformers' SDPA attention unchanged.
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
