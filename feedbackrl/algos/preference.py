"""Losses on pairs: Bradley-Terry (reward models) and DPO / IPO (policies)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float = 0.0,
) -> torch.Tensor:
    """Pairwise reward-model loss: r_chosen, r_rejected [B], margin scalar or [B] -> scalar.

    mean(-log sigmoid(r_c - r_r - margin)) is the negative log-likelihood of the preference
    under Bradley & Terry (1952); the margin asks for a larger gap on clearer pairs (Touvron
    et al. 2023, Llama 2). The loss only sees differences, so the reward's offset is free;
    center_coef * mean((r_c + r_r)^2) pins it near 0 (reward centering, Eisenstein et al. 2023).
    """
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_coef:
        loss = loss + center_coef * ((r_chosen + r_rejected) ** 2).mean()
    return loss


def dpo_loss(
    pi_chosen: torch.Tensor,
    pi_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    variant: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Direct preference optimisation: summed completion log-probs [B] each -> (loss, stats).

    h = (log pi_c - log ref_c) - (log pi_r - log ref_r)
    sigmoid (Rafailov et al. 2023, eq. 7): -(1-ls) log sigmoid(beta h) - ls log sigmoid(-beta h),
        where ls = label_smoothing is the assumed chance that a label is flipped
        (conservative DPO, Mitchell 2023); ls in [0, 0.5).
    ipo (Azar et al. 2023, eq. 17): (h - 1 / (2 beta))^2, which regresses h to a finite
        target instead of pushing it to infinity on deterministic preferences.
    stats: implicit rewards beta * (log pi - log ref): chosen_reward, rejected_reward,
    reward_margin (their mean difference) and reward_accuracy (share of pairs with h > 0).
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen = pi_chosen - ref_chosen
    rejected = pi_rejected - ref_rejected
    h = chosen - rejected
    if variant == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif variant == "ipo":
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO variant {variant!r}: use 'sigmoid' or 'ipo'")
    with torch.no_grad():
        stats = {
            "reward_margin": float((beta * h).mean()),
            "reward_accuracy": float((h > 0).float().mean()),
            "chosen_reward": float((beta * chosen).mean()),
            "rejected_reward": float((beta * rejected).mean()),
        }
    return losses.mean(), stats
