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
    """-log sigmoid(r_c - r_r - margin), mean over [B] pairs (Bradley & Terry 1952; the
    margin as in Llama 2), plus center_coef * mean((r_c + r_r)^2), which pins the reward's
    free offset near 0 (reward centering, Eisenstein et al. 2023)."""
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
    """Direct preference optimisation on sequence log-probs [B].

    h = (log pi_c - log ref_c) - (log pi_r - log ref_r)
    sigmoid (Rafailov et al. 2023): -(1-ls) log sigmoid(beta h) - ls log sigmoid(-beta h)
    ipo (Azar et al. 2023):         (h - 1 / (2 beta))^2
    """
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
