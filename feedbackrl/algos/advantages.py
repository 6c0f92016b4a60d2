"""Advantage estimators: GAE (PPO), group-normalised (GRPO), leave-one-out (RLOO)."""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016, eq. 11-16).

    rewards, values, mask: [B, T], completions right-padded (mask 1 on valid tokens).
    delta_t = r_t + gamma * V_{t+1} - V_t, with V after the last valid token = 0 (the episode
    ends); A_t = delta_t + gamma * lam * A_{t+1}. Returns (advantages [B, T], returns [B, T]),
    both 0 on padding; returns = advantages + values on valid tokens. Rewards and values on
    padding are ignored. No gradient flows back into `values` (they are rollout targets).
    """
    values = values.detach()
    mask = mask.to(values.dtype)
    rewards = rewards.to(values.dtype)
    b, t = rewards.shape
    advantages = torch.zeros_like(values)
    next_value = values.new_zeros(b)
    next_adv = values.new_zeros(b)
    for i in reversed(range(t)):
        m = mask[:, i]
        delta = rewards[:, i] + gamma * next_value - values[:, i]
        adv = (delta + gamma * lam * next_adv) * m
        advantages[:, i] = adv
        # a padded position passes nothing back: the last valid step sees V = 0, A = 0
        next_value = values[:, i] * m
        next_adv = adv
    returns = (advantages + values) * mask
    return advantages, returns


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantages (Shao et al. 2024, sec. 4.1.2): r minus its group's mean, optionally scaled.

    rewards: [N], contiguous groups of `group_size` (the G completions of one prompt) -> [N].
    scale: "group" divides by the group's std, "batch" by the std of all N rewards, "none"
    leaves the difference (Dr. GRPO, Liu et al. 2025). Std is the sample (unbiased, N-1) std,
    as in the GRPO reference code; a single reward has std 0. Division is by (std + eps).
    A group whose rewards are all equal gets exactly 0: it carries no learning signal, and
    rounding in its mean must not turn into +-1 after dividing by a rounding-sized std.
    """
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    grouped = rewards.reshape(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "none":
        out = centred
    elif scale == "group":
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(centred[:, :1])
        out = _safe_divide(centred, std, eps)
    elif scale == "batch":
        std = rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())
        out = _safe_divide(centred, std, eps)
    else:
        raise ValueError(f"unknown scale {scale!r}: use 'group', 'batch' or 'none'")
    all_equal = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)
    return torch.where(all_equal, torch.zeros_like(out), out).reshape(-1)


def _safe_divide(centred: torch.Tensor, std: torch.Tensor, eps: float) -> torch.Tensor:
    """centred / (std + eps), and exactly 0 where std is 0 (whatever eps is)."""
    std = std.expand_as(centred)
    return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024): [N] -> [N].

    A_i = r_i - mean of the other G-1 rewards of its contiguous group = G/(G-1) (r_i - mean).
    The baseline excludes r_i, so it is independent of sample i and the gradient stays unbiased.
    """
    if group_size < 2:
        raise ValueError(f"RLOO needs at least 2 samples per group, got group_size={group_size}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    grouped = rewards.reshape(-1, group_size)
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - others).reshape(-1)


def expand_to_tokens(seq_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A per-sequence value [B] on every valid token of its completion, 0 on padding: [B, T].

    The result keeps the dtype of `seq_values` (a float mask does not downcast float64)."""
    if not seq_values.is_floating_point():
        seq_values = seq_values.to(torch.get_default_dtype())
    return seq_values[:, None] * mask.to(seq_values.dtype)


def rewards_to_go(token_rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """G_t = sum of a row's rewards from token t on, 0 on padding: [N, T] -> [N, T]."""
    m = mask.to(token_rewards.dtype)
    return (token_rewards * m).flip(-1).cumsum(-1).flip(-1) * m


def group_reward_to_go_advantages(token_rewards: torch.Tensor, mask: torch.Tensor, group_size: int,
                                  scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """GRPO with per-token credit: rewards-to-go against a per-position group baseline.

    token_rewards, mask: [N, T], contiguous groups of `group_size`; a reward sits on the token
    that earned it (e.g. the token that completes a list's item carries that item's clicks).
    G_t = sum of the sample's rewards from token t on (0 past its end). A token's advantage is
    G_t minus the mean of G_t over its group (every member at the same position t, zeros
    included). The choice at t cannot change the rewards before t, so only what is ahead is
    credited (REINFORCE with causality); the baseline is a function of the position and the
    group, like GRPO's (which also includes the sample itself). At t = 0, G_0 is the sequence
    reward and the advantage is exactly `group_advantages` of the sequence rewards.
    scale: "group" divides by the std of the group's sequence rewards (as GRPO), "batch" by that
    of all sequence rewards, "none" not at all; a group whose G_t are all equal at every
    position gets exactly 0, and so does any group whose sequence rewards have std 0 when scaled.
    Returns [N, T], 0 on padding.
    """
    if group_size < 1 or token_rewards.shape[0] % group_size:
        raise ValueError(f"{token_rewards.shape[0]} rows do not split into groups of {group_size}")
    if not token_rewards.is_floating_point():
        token_rewards = token_rewards.to(torch.get_default_dtype())
    m = mask.to(token_rewards.dtype)
    to_go = rewards_to_go(token_rewards, mask)  # [N, T]
    n, t = to_go.shape
    grouped = to_go.reshape(-1, group_size, t)
    gmask = m.reshape(-1, group_size, t)
    centred = (grouped - grouped.mean(dim=1, keepdim=True)) * gmask
    total = grouped[:, :, 0]  # G_0: each sample's sequence reward, [groups, G]
    if scale == "none":
        out = centred
    elif scale == "group":
        std = total.std(dim=1) if group_size > 1 else torch.zeros_like(total[:, 0])
        out = _safe_divide(centred, std[:, None, None], eps)
    elif scale == "batch":
        std = total.std() if total.numel() > 1 else total.new_zeros(())
        out = _safe_divide(centred, std.reshape(1, 1, 1), eps)
    else:
        raise ValueError(f"unknown scale {scale!r}: use 'group', 'batch' or 'none'")
    # a group with nothing to tell apart: exactly 0, never rounding noise blown up
    flat = grouped.masked_fill(gmask == 0, float("nan"))
    first = flat[:, :1]
    same = ((flat == first) | (flat.isnan() & first.isnan())).all(dim=2).all(dim=1)
    out = torch.where(same[:, None, None], torch.zeros_like(out), out)
    return (out * gmask).reshape(n, t)
