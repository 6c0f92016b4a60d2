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
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip (Schulman et al. 2017, eq. 7), negated for minimisation.

    logprobs (with grad), old_logprobs, advantages, mask: [B, T] -> (loss scalar, stats).
    ratio = pi_theta / pi_old = exp(logprobs - old_logprobs)
    l_t = -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A), reduced by `aggregate`.
    Separate low/high ranges allow DAPO's clip-higher (Yu et al. 2025). `dual_clip` = c > 1
    additionally bounds the loss of a negative-advantage token at -c * A (Ye et al. 2020), so
    one token whose ratio exploded cannot dominate the batch.

    stats (valid tokens only): clip_fraction = share of tokens where the clipped term is the
    active one (their gradient is 0); approx_kl = mean((ratio - 1) - log ratio), the k3
    estimate of KL(pi_old || pi_theta); ratio_mean.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    objective = torch.minimum(unclipped, clipped)
    if dual_clip is not None:
        objective = torch.where(advantages < 0, torch.maximum(objective, dual_clip * advantages), objective)
    loss = aggregate(-objective, mask, aggregation)
    with torch.no_grad():
        stats = {
            "clip_fraction": float(masked_mean((clipped < unclipped).to(ratio.dtype), mask)),
            "approx_kl": float(masked_mean((ratio - 1.0) - log_ratio, mask)),
            "ratio_mean": float(masked_mean(ratio, mask)),
        }
    return loss, stats


def policy_gradient_loss(
    logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, aggregation: str = "seq_mean"
) -> torch.Tensor:
    """REINFORCE (Williams 1992): -A * log pi per token, aggregated like the surrogate.

    logprobs, advantages, mask: [B, T] -> scalar. At ratio 1 its gradient equals the clipped
    surrogate's, since d ratio / d logprob = ratio = 1 there and no clip is active."""
    return aggregate(-advantages * logprobs, mask, aggregation)


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    aggregation: str = "token_mean",
) -> torch.Tensor:
    """PPO2's clipped value loss: values, old_values, returns, mask [B, T] -> scalar.

    0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2): the pessimistic of the two,
    so an update gains nothing from moving V more than `clip` from the rollout's value."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    per_token = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return aggregate(per_token, mask, aggregation)
