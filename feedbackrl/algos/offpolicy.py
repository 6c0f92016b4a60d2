"""Off-policy evaluation: estimate a target policy's value from logs of another policy.

All inputs are 1-D tensors over N logged rounds (or [N, K] for per-position estimators);
`target_probs` and `logging_probs` are the probabilities each policy gives the logged
action. Logging probabilities must be > 0: a logged action had a chance of being logged.
"""

from __future__ import annotations

from typing import Callable

import torch


def _weights(target_probs: torch.Tensor, logging_probs: torch.Tensor, clip_max: float | None) -> torch.Tensor:
    """w = pi_target(a|x) / pi_logging(a|x), optionally min(w, clip_max): [N] or [N, K]."""
    if bool((logging_probs <= 0).any()):
        raise ValueError("logging propensities must be > 0 for every logged action (found one <= 0)")
    w = target_probs / logging_probs
    return w.clamp(max=clip_max) if clip_max is not None else w


def effective_sample_size(weights: torch.Tensor) -> float:
    """(sum w)^2 / sum w^2 (Kish 1965) for weights [N]: how many on-policy rounds the
    weighted log is worth; N when all weights are equal, 0 when all are 0."""
    denom = (weights**2).sum()
    return float(weights.sum() ** 2 / denom) if denom > 0 else 0.0


def ips_estimate(
    rewards: torch.Tensor, target_probs: torch.Tensor, logging_probs: torch.Tensor, clip_max: float | None = None
) -> float:
    """Inverse propensity scoring (Horvitz & Thompson 1952): mean(w * r) over [N] rounds.

    Unbiased without clipping; clipping w at clip_max trades bias for variance (Ionides 2008)."""
    return float((_weights(target_probs, logging_probs, clip_max) * rewards).mean())


def snips_estimate(
    rewards: torch.Tensor, target_probs: torch.Tensor, logging_probs: torch.Tensor, clip_max: float | None = None
) -> float:
    """Self-normalised IPS (Swaminathan & Joachims 2015): sum(w r) / sum(w) over [N] rounds.

    Biased but consistent, and always within [min r, max r]; 0.0 if every weight is 0."""
    w = _weights(target_probs, logging_probs, clip_max)
    top = w.max() if w.numel() else w.new_zeros(())
    if not top > 0:
        return 0.0
    # scaled by the largest weight first (the ratio does not change): a subnormal weight times a
    # reward would round to 0 and the estimate fall outside the rewards' range
    w = w / top
    return float((w * rewards).sum() / w.sum())


def direct_method_estimate(predicted_reward_target: torch.Tensor) -> float:
    """Direct method: mean over [N] rounds of a reward model's expected reward under the
    target policy, q(x, pi) = sum_a pi(a|x) q(x, a). Only as good as the model."""
    return float(predicted_reward_target.mean())


def doubly_robust_estimate(
    rewards: torch.Tensor,
    target_probs: torch.Tensor,
    logging_probs: torch.Tensor,
    predicted_reward_logged: torch.Tensor,
    predicted_reward_target: torch.Tensor,
    clip_max: float | None = None,
) -> float:
    """Doubly robust (Dudik et al. 2011): mean(q(x, pi) + w * (r - q(x, a))) over [N] rounds.

    The model's guess, corrected by importance-weighted residuals of the logged action.
    Unbiased if either the propensities or the reward model are exact; with an exact model
    the correction has mean 0 and, for deterministic rewards, is 0 on every round."""
    w = _weights(target_probs, logging_probs, clip_max)
    return float((predicted_reward_target + w * (rewards - predicted_reward_logged)).mean())


def position_based_ips(
    clicks: torch.Tensor, target_probs: torch.Tensor, logging_probs: torch.Tensor, clip_max: float | None = None
) -> float:
    """Per-position IPS for rankings (Li et al. 2018): clicks, target_probs, logging_probs [N, K].

    The probabilities are each policy's marginal chance of putting the logged item at that
    position, so every position has its own weight. Under a position-based click model this
    is unbiased for the expected clicks per impression: mean_n sum_k (p_target / p_logged) * click.
    """
    w = _weights(target_probs, logging_probs, clip_max)
    return float((w * clicks).sum(-1).mean())


def bootstrap_ci(
    estimator: Callable[[torch.Tensor], float],
    n: int,
    num_resamples: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (Efron 1979) interval at level 1 - alpha.

    `estimator(idx)` receives a LongTensor [n] of row indices drawn with replacement from
    0..n-1 and returns the estimate on those rows; it is called `num_resamples` times. The
    same seed gives the same interval."""
    if n < 1 or num_resamples < 1:
        raise ValueError(f"bootstrap needs n >= 1 and num_resamples >= 1, got n={n}, num_resamples={num_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    gen = torch.Generator().manual_seed(seed)
    values = torch.tensor(
        [float(estimator(torch.randint(0, n, (n,), generator=gen))) for _ in range(num_resamples)],
        dtype=torch.float64,
    )
    low = torch.quantile(values, alpha / 2).item()
    high = torch.quantile(values, 1 - alpha / 2).item()
    return low, high
