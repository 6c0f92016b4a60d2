"""Offline policy improvement from scored tuples: weighted regression and off-policy gradient."""

from __future__ import annotations

import torch


def advantage_weights(
    advantages: torch.Tensor, temperature: float = 1.0, max_weight: float = 20.0, normalise: str = "none"
) -> torch.Tensor:
    """exp(A / temperature) clipped at max_weight (AWR, Peng et al. 2019): [B] -> [B], detached.
    normalise="batch" divides by the batch mean so the loss scale does not drift with A."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    a = advantages.detach() / temperature
    w = torch.exp(torch.clamp(a, max=torch.log(torch.tensor(float(max_weight))).item()))
    if normalise == "batch":
        w = w / w.mean().clamp_min(1e-12)
    elif normalise != "none":
        raise ValueError(f"unknown normalise {normalise!r}: use 'none' or 'batch'")
    return w


def weighted_nll_loss(seq_logprobs: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """-mean(w * log pi(y|x)), per token when lengths are given: [B] -> scalar."""
    lp = seq_logprobs if lengths is None else seq_logprobs / lengths.clamp_min(1)
    return -(weights.detach() * lp).mean()


def importance_weights(target_logprob: torch.Tensor, behaviour_logprob: torch.Tensor, clip_max: float = 10.0) -> torch.Tensor:
    """min(pi_target / pi_behaviour, clip_max) computed in log space: [B] -> [B]."""
    log_w = target_logprob - behaviour_logprob
    return torch.exp(torch.clamp(log_w, max=torch.log(torch.tensor(float(clip_max))).item()))


def offpolicy_pg_loss(
    seq_logprobs: torch.Tensor,
    behaviour_logprobs: torch.Tensor,
    rewards: torch.Tensor,
    clip_max: float = 10.0,
    baseline: float | torch.Tensor = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Off-policy REINFORCE with clipped importance weights (Precup et al. 2000; the
    clipping as in Bottou et al. 2013): -mean(w * (r - b) * log pi(y|x)), w detached, so the
    gradient is the importance-weighted policy gradient of the logged tuples. [B] inputs."""
    w = importance_weights(seq_logprobs.detach(), behaviour_logprobs, clip_max)
    loss = -(w * (rewards - baseline) * seq_logprobs).mean()
    with torch.no_grad():
        raw = torch.exp(seq_logprobs.detach() - behaviour_logprobs)
        stats = {
            "mean_weight": float(w.mean()),
            "clipped_fraction": float((raw > clip_max).float().mean()),
            "ess": float(w.sum() ** 2 / (w**2).sum().clamp_min(1e-12)),
        }
    return loss, stats
