"""Rewards: verifiable, learned and combined. Each returns a `RewardResult` per sample."""

from feedbackrl.rewards.base import RewardFn, RewardResult, score_samples
from feedbackrl.rewards.combine import CombinedReward, Component, component_means
from feedbackrl.rewards.function import FunctionReward
from feedbackrl.rewards.registry import get_reward, register_reward

__all__ = [
    "CombinedReward", "Component", "FunctionReward", "RewardFn", "RewardResult", "component_means",
    "get_reward", "register_reward", "score_samples",
]
