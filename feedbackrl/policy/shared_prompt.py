"""The prompt's forward pass, run once per distinct prompt and shared by the rows that repeat it.

A GRPO group is G completions of one prompt: computed row by row, the prompt's tokens go through
the model G times and give G identical KV caches. Here the distinct prompts go through once
(left-padded, so each row's last prompt token sits in the last column) and their cache rows are
gathered out to every row (`Cache.batch_select_indices`); the completions then run on top of it.
The gather is differentiable, so in a training pass the gradient that reaches a shared prompt is
the sum over its rows, as it would be with the prompt repeated: the same maths, fewer FLOPs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import torch


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask, both [N, W] (W = the longest row)."""
    n, width = len(rows), max(len(r) for r in rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
        attn[i, width - len(r):] = 1
    return ids, attn


def unique_rows(rows: Sequence[Sequence[int]]) -> tuple[list[Sequence[int]], list[int]]:
    """The distinct rows in order of first appearance, and for each row its distinct row's index."""
    first: dict[tuple[int, ...], int] = {}
    inverse = [first.setdefault(tuple(r), len(first)) for r in rows]
    distinct: list[Sequence[int]] = [()] * len(first)
    for r, u in zip(rows, inverse):
        distinct[u] = r
    return distinct, inverse


def _forward_parameters(model) -> set[str]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the HF model
    return set(inspect.signature(base.forward).parameters)


def cache_keyword(model) -> str:
    """transformers 5.2x renamed `past_key_values` to `cache`; accept both."""
    return "cache" if "cache" in _forward_parameters(model) else "past_key_values"


def cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _last_logits_only(model) -> dict[str, int]:
    """The keyword that has the LM head run on the last position only (renamed in transformers 4.50)."""
    params = _forward_parameters(model)
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return {name: 1}
    return {}


@dataclass
class PromptPass:
    cache: object  # the KV cache, one row per input row
    last_logits: torch.Tensor  # [N, V] logits after each row's last prompt token
    last_hidden: torch.Tensor | None  # [N, H] last layer's hidden state there (with_hidden)
    attention_mask: torch.Tensor  # [N, W] left-padded
    positions: torch.Tensor  # [N, W] position ids, counted from each row's first real token


def prompt_pass(model, rows: Sequence[Sequence[int]], pad_id: int, *, with_hidden: bool = False,
                share: bool = True) -> PromptPass:
    """Run the prompts `rows` (which may repeat) through `model` with the KV cache, each distinct
    prompt once (`share=False`: every row). Runs under whatever grad mode the caller is in."""
    device = next(model.parameters()).device
    distinct, inverse = unique_rows(rows)
    shared = share and len(distinct) < len(rows)
    ids, attn = (x.to(device) for x in left_pad(distinct if shared else rows, pad_id))
    positions = (attn.cumsum(-1) - 1).clamp_min(0)
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True,
                output_hidden_states=with_hidden, **_last_logits_only(model))
    cache = cache_of(out)
    last_logits = out.logits[:, -1, :]
    last_hidden = out.hidden_states[-1][:, -1, :] if with_hidden else None
    if shared:
        if not callable(getattr(cache, "batch_select_indices", None)):
            # a cache whose rows cannot be gathered: run every row's prompt instead
            return prompt_pass(model, rows, pad_id, with_hidden=with_hidden, share=False)
        index = torch.tensor(inverse, device=device)
        cache.batch_select_indices(index)
        last_logits, attn, positions = last_logits[index], attn[index], positions[index]
        last_hidden = last_hidden[index] if last_hidden is not None else None
    return PromptPass(cache, last_logits, last_hidden, attn, positions)
