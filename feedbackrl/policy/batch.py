"""`Batch`: padded tensors built from samples for one forward pass of prompt + completion.

Layout: each row is prompt ids followed by completion ids, right-padded to the longest row.
Per-token quantities of the completion (log-probs, values, advantages) are [B, T] tensors,
T = the longest completion, left-aligned so that column j is the j-th completion token;
`positions` maps column j to the logits column that predicts it (prompt_len - 1 + j).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from feedbackrl.sample import Sample


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    positions: torch.Tensor  # [B, T] logits column predicting completion token j
    completion_ids: torch.Tensor  # [B, T]
    completion_mask: torch.Tensor  # [B, T] 1.0 on real completion tokens
    old_logprobs: torch.Tensor  # [B, T] behaviour log-probs
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # ref_logprobs, values, advantages, returns
    # [B, T, V] bool, from masked sampling: the tokens allowed at each completion position (all
    # True on rows and positions without a constraint); None = every token everywhere
    allowed: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> "Batch":
        """The same batch with every tensor on `device` (a no-op for tensors already there)."""
        return Batch(
            input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
            positions=self.positions.to(device), completion_ids=self.completion_ids.to(device),
            completion_mask=self.completion_mask.to(device), old_logprobs=self.old_logprobs.to(device),
            extras={k: v.to(device) for k, v in self.extras.items()},
            allowed=self.allowed.to(device) if self.allowed is not None else None,
        )

    def reordered(self, index: torch.Tensor) -> "Batch":
        """Rows `index` (e.g. a permutation), every column kept."""
        return Batch(
            input_ids=self.input_ids[index], attention_mask=self.attention_mask[index],
            positions=self.positions[index], completion_ids=self.completion_ids[index],
            completion_mask=self.completion_mask[index], old_logprobs=self.old_logprobs[index],
            extras={k: v[index] for k, v in self.extras.items()},
            allowed=self.allowed[index] if self.allowed is not None else None,
        )

    def select(self, index: torch.Tensor) -> "Batch":
        """Rows `index` (a minibatch), trimmed to the columns those rows use."""
        mask = self.completion_mask[index]
        t = int(mask.sum(-1).max().item()) if len(index) else 0
        t = max(t, 1)
        attn = self.attention_mask[index]
        length = max(int(attn.sum(-1).max().item()), 1)
        return Batch(
            input_ids=self.input_ids[index, :length],
            attention_mask=attn[:, :length],
            positions=self.positions[index, :t],
            completion_ids=self.completion_ids[index, :t],
            completion_mask=mask[:, :t],
            old_logprobs=self.old_logprobs[index, :t],
            extras={k: v[index, :t] if v.dim() == 2 else v[index] for k, v in self.extras.items()},
            allowed=self.allowed[index, :t] if self.allowed is not None else None,
        )


def collate(samples: Sequence[Sample], pad_id: int) -> Batch:
    b = len(samples)
    lengths = [len(s.prompt_ids) + len(s.completion_ids) for s in samples]
    width = max(max(lengths), 1)
    t = max(max((len(s.completion_ids) for s in samples), default=1), 1)
    if any(len(s.prompt_ids) == 0 for s in samples):
        raise ValueError("a sample needs at least one prompt token")
    # one tensor per field from padded lists (per-row tensors cost ~3 ms a 128-row batch)
    def padded(rows, width, value, dtype):
        return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=dtype).view(b, width)

    input_ids = padded([[*s.prompt_ids, *s.completion_ids] for s in samples], width, pad_id, torch.long)
    attention = (torch.arange(width) < torch.tensor(lengths)[:, None]).long()
    prompt_lengths = torch.tensor([len(s.prompt_ids) for s in samples], dtype=torch.long)
    completion_lengths = torch.tensor([len(s.completion_ids) for s in samples], dtype=torch.long)
    in_completion = torch.arange(t) < completion_lengths[:, None]
    positions = torch.where(in_completion, prompt_lengths[:, None] - 1 + torch.arange(t), 0)
    completion_ids = padded([s.completion_ids for s in samples], t, pad_id, torch.long)
    completion_mask = in_completion.float()
    old_logprobs = padded([[float(x) for x in s.logprobs[:len(s.completion_ids)]] for s in samples], t, 0.0,
                          torch.float32)
    allowed = None
    masked = [s for s in samples if s.allowed is not None]
    if masked:
        allowed = torch.ones((b, t, masked[0].allowed.shape[-1]), dtype=torch.bool)
        for i, s in enumerate(samples):
            if s.allowed is not None:
                c = min(len(s.completion_ids), s.allowed.shape[0])
                allowed[i, :c] = s.allowed[:c]
    return Batch(input_ids, attention, positions, completion_ids, completion_mask, old_logprobs, allowed=allowed)
