"""Per-token log-probs, entropy and KL estimators from logits and sampled tokens."""

from __future__ import annotations

import torch


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token]: logits [B, T, V], tokens [B, T] -> [B, T].

    logsumexp once per position instead of materialising a second [B, T, V] tensor."""
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = -sum_v p_v log p_v per position: [B, T, V] -> [B, T]."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def kl_divergence(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from tokens sampled from pi (Schulman 2020,
    "Approximating KL divergence"). With log r = log ref - log pi:
      k1 = -log r                (unbiased, high variance, can be negative)
      k2 = (log r)^2 / 2         (biased, low variance)
      k3 = (r - 1) - log r       (unbiased, low variance, always >= 0)
    logprobs, ref_logprobs: [B, T] -> [B, T]."""
    log_r = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r**2
    if estimator == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"unknown KL estimator {estimator!r}: use 'k1', 'k2' or 'k3'")
