"""Off-policy evaluation: estimate a target policy's value from logs of another policy.

All inputs are 1-D tensors over N logged rounds (or [N, K] for per-position estimators);
`target_probs` and `logging_probs` are the probabilities each policy gives the logged action.
"""

from __future__ import annotations

from typing import Callable

import torch


def _weights(target_probs: torch.Tensor, logging_probs: torch.Tensor, clip_max: float | None) -> torch.Tensor:
    w = target_probs / logging_probs
    return w.clamp(max=clip_max) if clip_max is not None else w


def effective_sample_size(weights: torch.Tensor) -> float:
    """(sum w)^2 / sum w^2 (Kish 1965): how many on-policy rounds the weighted log is worth."""
    denom = (weights**2).sum()
    return float(weights.sum() ** 2 / denom) if denom > 0 else 0.0


def ips_estimate(rewards, target_probs, logging_probs, clip_max: float | None = None) -> float:
    """Inverse propensity scoring (Horvitz & Thompson 1952): mean(w * r)."""
    return float((_weights(target_probs, logging_probs, clip_max) * rewards).mean())


def snips_estimate(rewards, target_probs, logging_probs, clip_max: float | None = None) -> float:
    """Self-normalised IPS (Swaminathan & Joachims 2015): sum(w r) / sum(w)."""
    w = _weights(target_probs, logging_probs, clip_max)
    total = w.sum()
    return float((w * rewards).sum() / total) if total > 0 else 0.0


def direct_method_estimate(predicted_reward_target) -> float:
    """Direct method: the mean of a reward model's prediction under the target policy."""
    return float(predicted_reward_target.mean())


def doubly_robust_estimate(
    rewards, target_probs, logging_probs, predicted_reward_logged, predicted_reward_target, clip_max: float | None = None
) -> float:
    """Doubly robust (Dudik et al. 2011): mean(q_target + w * (r - q_logged)). Unbiased if
    either the propensities or the reward model are right."""
    w = _weights(target_probs, logging_probs, clip_max)
    return float((predicted_reward_target + w * (rewards - predicted_reward_logged)).mean())


def position_based_ips(clicks, target_probs, logging_probs, clip_max: float | None = None) -> float:
    """Per-position IPS for rankings (Li et al. 2018): [N, K] inputs, where the probabilities
    are each policy's chance of putting the logged item at that position. Estimates expected
    clicks per impression: mean_n sum_k (p_target / p_logged) * click."""
    w = _weights(target_probs, logging_probs, clip_max)
    return float((w * clicks).sum(-1).mean())


def bootstrap_ci(
    estimator: Callable[[torch.Tensor], float],
    n: int,
    num_resamples: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap: `estimator(idx)` on `num_resamples` resamples of n row indices."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.tensor([
        float(estimator(torch.randint(0, n, (n,), generator=gen))) for _ in range(num_resamples)
    ], dtype=torch.float64)
    low = torch.quantile(values, alpha / 2).item()
    high = torch.quantile(values, 1 - alpha / 2).item()
    return low, high
