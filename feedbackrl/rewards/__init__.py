"""Rewards: verifiable, learned and combined. Each returns a `RewardResult` per sample."""

from feedbackrl.rewards.base import RewardFn, RewardResult, score_samples

__all__ = ["RewardFn", "RewardResult", "score_samples"]
