"""Masked reductions over padded [B, T] tensors (mask: 1 on valid tokens, 0 on padding)."""

from __future__ import annotations

import torch


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """sum(x * mask) / max(sum(mask), 1); with `dim`, per slice along it."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population variance of the valid entries."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over valid entries; with shift_mean=False the mean is added back."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    white = (x - mean) * torch.rsqrt(var + eps)
    return white if shift_mean else white + mean


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Reduce a [B, T] per-token loss to a scalar.

    seq_mean:   (1/G) sum_i (1/|o_i|) sum_t l_it — each sequence weighs the same (GRPO paper);
                sequences with no valid token are left out of the outer mean.
    token_mean: sum_it l_it / sum_i |o_i| — each token weighs the same (DAPO, Dr. GRPO).
    """
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    if mode == "seq_mean":
        lengths = mask.to(per_token.dtype).sum(-1)
        per_seq = masked_sum(per_token, mask, dim=-1) / lengths.clamp_min(1.0)
        has = (lengths > 0).to(per_token.dtype)
        return (per_seq * has).sum() / has.sum().clamp_min(1.0)
    raise ValueError(f"unknown aggregation {mode!r}: use 'seq_mean' or 'token_mean'")
