"""Per-token credit from a reward that says which part of the completion earned what.

A reward may put `spans` in its details: `[[start, end, reward], ...]`, character offsets into
the completion and the part of the score that piece of text earned (the shop's reward: each
listed item's expected clicks, add-to-carts and purchases at its position). `token_rewards`
turns them into one reward per completion token: a span's reward sits on the token that
completes it (the first whose decoded prefix reaches the span's end), and whatever the spans
do not explain (penalties, a gate) sits on the last token, so a sample's token rewards always
sum to its score. With `algo.credit: reward_to_go`, GRPO's advantages then come from
`group_reward_to_go_advantages` and PPO's GAE gets these token rewards instead of the whole
score on the last token. A sample without spans gets its whole score on the last token, which
is exactly sequence-level credit.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from feedbackrl.sample import Sample


def token_rewards(sample: Sample, decode: Callable[[Sequence[int]], str], score: float) -> list[float]:
    """One reward per completion token of `sample` (see the module docstring); `score` is the
    sample's reward as the loop uses it (an errored sample's stand-in included)."""
    spans = (sample.details or {}).get("spans") if sample.error is None else None
    return span_token_rewards(list(sample.completion_ids), decode, spans, score)


def span_token_rewards(ids: Sequence[int], decode: Callable[[Sequence[int]], str], spans, score: float) -> list[float]:
    """One reward per token of `ids` from `spans` ([[start, end, reward], ...], character offsets
    into `decode(ids)`); the rest of `score` on the last token (see the module docstring)."""
    ids = list(ids)
    if not ids:
        return []
    out = [0.0] * len(ids)
    placed = 0.0
    if spans:
        ends = [len(decode(ids[: t + 1])) for t in range(len(ids))]
        for span in spans:
            try:
                _start, end, reward = int(span[0]), int(span[1]), float(span[2])
            except (TypeError, ValueError, IndexError):
                continue  # a malformed span credits nothing; its share falls to the last token
            t = next((i for i, e in enumerate(ends) if e >= end), len(ids) - 1)
            out[t] += reward
            placed += reward
    out[-1] += score - placed
    return out


def token_reward_tensor(samples: Sequence[Sample], decode, scores: torch.Tensor, width: int) -> torch.Tensor:
    """[N, width] token rewards for a batch whose completions are left-aligned columns."""
    out = torch.zeros((len(samples), width), dtype=scores.dtype)
    for i, s in enumerate(samples):
        row = token_rewards(s, decode, float(scores[i]))
        if row:
            out[i, : len(row)] = torch.tensor(row[:width], dtype=scores.dtype)
    return out
