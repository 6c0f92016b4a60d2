"""PPO's clipped surrogate, the plain policy gradient, and the clipped value loss."""

from __future__ import annotations

import torch

from feedbackrl.algos.masked import aggregate, masked_mean


def clipped_surrogate_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    aggregation: str = "seq_mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip (Schulman et al. 2017, eq. 7), negated for minimisation; [B, T] inputs.

    ratio = pi_theta / pi_old = exp(logprobs - old_logprobs)
    l_t = -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)
    Separate low/high clip ranges allow DAPO's clip-higher (Yu et al. 2025).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    loss = aggregate(per_token, mask, aggregation)
    with torch.no_grad():
        stats = {
            "clip_fraction": float(masked_mean((clipped < unclipped).float(), mask)),
            "approx_kl": float(masked_mean((ratio - 1.0) - log_ratio, mask)),
            "ratio_mean": float(masked_mean(ratio, mask)),
        }
    return loss, stats


def policy_gradient_loss(
    logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, aggregation: str = "seq_mean"
) -> torch.Tensor:
    """REINFORCE: -A * log pi, aggregated like the surrogate so the two compare at ratio 1."""
    return aggregate(-advantages * logprobs, mask, aggregation)


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    aggregation: str = "token_mean",
) -> torch.Tensor:
    """0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2): the value may not move
    more than `clip` from the rollout's value in one update (PPO2's value clipping)."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    per_token = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return aggregate(per_token, mask, aggregation)
