"""Offline policy improvement from scored tuples: weighted regression and off-policy gradient."""

from __future__ import annotations

import math

import torch

from feedbackrl.algos.advantages import rewards_to_go
from feedbackrl.algos.offpolicy import effective_sample_size


def advantage_weights(
    advantages: torch.Tensor, temperature: float = 1.0, max_weight: float = 20.0, normalise: str = "none"
) -> torch.Tensor:
    """AWR weights (Peng et al. 2019, eq. 7): min(exp(A / temperature), max_weight), [B] -> [B].

    Detached: weights scale the regression target, they are not optimised. The exponent is
    clamped before exp, so huge advantages give max_weight rather than inf.
    normalise="batch" divides by the batch mean so the loss scale does not drift with A."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if max_weight <= 0:
        raise ValueError(f"max_weight must be > 0, got {max_weight}")
    a = advantages.detach() / temperature
    w = torch.exp(torch.clamp(a, max=math.log(max_weight)))
    if normalise == "batch":
        w = w / w.mean().clamp_min(1e-12)
    elif normalise != "none":
        raise ValueError(f"unknown normalise {normalise!r}: use 'none' or 'batch'")
    return w


def weighted_nll_loss(
    seq_logprobs: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted maximum likelihood: -mean(w * log pi(y|x) / |y|), [B] inputs -> scalar.

    seq_logprobs: summed token log-probs of each completion; lengths (token counts), if
    given, turn them into per-token means so long completions do not dominate."""
    lp = seq_logprobs if lengths is None else seq_logprobs / lengths.to(seq_logprobs.dtype).clamp_min(1.0)
    return -(weights.detach() * lp).mean()


def prompt_reward_to_go_advantages(token_rewards: torch.Tensor, mask: torch.Tensor,
                                   prompt_ids: torch.Tensor) -> torch.Tensor:
    """Per-token advantages of logged responses for weighted regression with per-item credit.

    token_rewards, mask: [N, T] (a reward sits on the token that earned it); prompt_ids: [N],
    rows with the same id share a prompt. G_t = the row's rewards from token t on (0 past its
    end); the advantage is G_t minus the mean of G_t over the rows of the same prompt at the same
    position (zeros past a shorter row's end included): the logging policy's value at that point
    of the list, estimated from the log. At t = 0 this is AWR's sequence advantage (reward minus
    the prompt's mean logged reward). Returns [N, T], 0 on padding."""
    m = mask.to(token_rewards.dtype)
    to_go = rewards_to_go(token_rewards, mask)
    groups = int(prompt_ids.max()) + 1 if prompt_ids.numel() else 0
    sums = torch.zeros((groups, to_go.shape[1]), dtype=to_go.dtype).index_add_(0, prompt_ids, to_go)
    counts = torch.zeros(groups, dtype=to_go.dtype).index_add_(0, prompt_ids, torch.ones_like(to_go[:, 0]))
    baseline = (sums / counts.clamp_min(1.0)[:, None])[prompt_ids]
    return (to_go - baseline) * m


def token_weighted_nll_loss(token_logprobs: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weighted maximum likelihood per token: -mean over rows of sum_t(w_t log pi_t) / |y|.
    All [B, T]; weights are detached. With one weight per row repeated on its tokens this is
    `weighted_nll_loss` with lengths."""
    m = mask.to(token_logprobs.dtype)
    per_row = (weights.detach().to(token_logprobs.dtype) * token_logprobs * m).sum(-1) / m.sum(-1).clamp_min(1.0)
    return -per_row.mean()


def importance_weights(
    target_logprob: torch.Tensor, behaviour_logprob: torch.Tensor, clip_max: float = 10.0
) -> torch.Tensor:
    """min(pi_target / pi_behaviour, clip_max) from log-probs [B] -> [B].

    Clamped in log space before exp, so a log-ratio of 1000 gives clip_max, not inf."""
    if clip_max <= 0:
        raise ValueError(f"clip_max must be > 0, got {clip_max}")
    log_w = target_logprob - behaviour_logprob
    return torch.exp(torch.clamp(log_w, max=math.log(clip_max)))


def offpolicy_pg_loss(
    seq_logprobs: torch.Tensor,
    behaviour_logprobs: torch.Tensor,
    rewards: torch.Tensor,
    clip_max: float = 10.0,
    baseline: float | torch.Tensor = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Off-policy REINFORCE with truncated importance weights: [B] inputs -> (loss, stats).

    -mean(w * (r - b) * log pi(y|x)) with w = min(pi / mu, clip_max) detached, so the gradient
    is the importance-weighted policy gradient of the logged tuples (Precup et al. 2000;
    truncation as in Bottou et al. 2013). stats: mean_weight, clipped_fraction (share of raw
    weights above clip_max), ess (Kish effective sample size of the clipped weights).
    """
    w = importance_weights(seq_logprobs.detach(), behaviour_logprobs, clip_max)
    loss = -(w * (rewards - baseline) * seq_logprobs).mean()
    with torch.no_grad():
        log_w = seq_logprobs.detach() - behaviour_logprobs
        stats = {
            "mean_weight": float(w.mean()),
            "clipped_fraction": float((log_w > math.log(clip_max)).to(w.dtype).mean()),
            "ess": effective_sample_size(w),
        }
    return loss, stats
