"""Masked reductions over padded [B, T] tensors (mask: 1 on valid tokens, 0 on padding).

Masks may be bool, int or float; they are cast to x's dtype and broadcast to x's shape."""

from __future__ import annotations

import torch


def _as_weights(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # expand so the count of valid entries matches x even when mask broadcasts (e.g. [B, 1])
    return mask.to(x.dtype).expand_as(x)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """sum(x * mask): x, mask [B, T] -> scalar, or summed along `dim` (e.g. dim=-1 -> [B])."""
    weighted = x * _as_weights(x, mask)
    return weighted.sum() if dim is None else weighted.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """sum(x * mask) / max(sum(mask), 1): x, mask [B, T] -> scalar, or per slice along `dim`.

    The clamp makes an all-padding input (or slice) give 0 rather than 0/0 = NaN."""
    m = _as_weights(x, mask)
    if dim is None:
        return (x * m).sum() / m.sum().clamp_min(1.0)
    return (x * m).sum(dim) / m.sum(dim).clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population (1/n) variance of the valid entries of x: [B, T] -> scalar."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) with mean and population var over valid entries: [B, T] -> [B, T].

    shift_mean=False adds the mean back (rescale only), which keeps the sign of e.g. a reward.
    Padding entries are transformed too; multiply by the mask where they must be 0.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    white = (x - mean) * torch.rsqrt(var + eps)
    return white if shift_mean else white + mean


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Reduce a [B, T] per-token loss to a scalar.

    seq_mean:   (1/B') sum_i (1/|o_i|) sum_t l_it — each sequence weighs the same (GRPO paper,
                eq. 3); the B' sequences counted are those with at least one valid token.
    token_mean: sum_it l_it / sum_i |o_i| — each token weighs the same (DAPO, Yu et al. 2025),
                so long completions are not down-weighted per token.
    Either gives 0 when no token is valid.
    """
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    if mode == "seq_mean":
        lengths = _as_weights(per_token, mask).sum(-1)
        per_seq = masked_sum(per_token, mask, dim=-1) / lengths.clamp_min(1.0)
        has_tokens = (lengths > 0).to(per_token.dtype)
        return (per_seq * has_tokens).sum() / has_tokens.sum().clamp_min(1.0)
    raise ValueError(f"unknown aggregation {mode!r}: use 'seq_mean' or 'token_mean'")
