"""Rewards by name, so configs can say `reward: math` and other packages can add their own.

A factory is anything callable with keyword arguments that returns a `RewardFn` (usually the
reward's class), or a "module:attribute" string naming one: the string form keeps heavy
rewards (a learned model needing torch) from being imported until a config asks for them.

    register_reward("shop_validity", "feedbackrl.tasks.shop.rewards:ValidItemsReward")
    reward = get_reward("math", timeout_s=2.0)
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Union

from feedbackrl.rewards.base import RewardFn

RewardFactory = Union[Callable[..., RewardFn], str]

REWARDS: dict[str, RewardFactory] = {
    "math": "feedbackrl.rewards.math:MathAnswerReward",
    "exact_match": "feedbackrl.rewards.text:ExactMatchReward",
    "token_f1": "feedbackrl.rewards.text:TokenF1Reward",
    "label_match": "feedbackrl.rewards.text:LabelMatchReward",
    "ranking": "feedbackrl.rewards.ranking:RankingReward",
    "rules": "feedbackrl.rewards.rules:BusinessRuleReward",
    "pii": "feedbackrl.rewards.pii:PIIGuard",
    # Rewards with heavy dependencies, imported only when a config names them.
    "code": "feedbackrl.rewards.code:CodeReward",
    "learned": "feedbackrl.rewards.learned:LearnedReward",
    "combined": "feedbackrl.rewards.combine:CombinedReward.from_config",
}


def register_reward(name: str, factory: RewardFactory, *, replace: bool = False) -> None:
    """Make `factory` available as `get_reward(name, ...)`.

    Registering a taken name is an error unless `replace=True`, so two packages cannot
    silently shadow each other's rewards.
    """
    if name in REWARDS and not replace and _address(REWARDS[name]) != _address(factory):
        raise ValueError(f"reward {name!r} is already registered; pass replace=True to override it")
    REWARDS[name] = factory


def _address(factory: RewardFactory) -> str:
    # A lazy "module:attr" entry and the object it names are the same registration, so a
    # module may register itself even though this table already points at it.
    if isinstance(factory, str):
        return factory
    return f"{getattr(factory, '__module__', '')}:{getattr(factory, '__qualname__', repr(factory))}"


def _resolve(name: str, factory: RewardFactory) -> Callable[..., RewardFn]:
    if not isinstance(factory, str):
        return factory
    module_name, _, attr_path = factory.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"reward {name!r}: cannot load {factory!r} ({e})") from None
    return obj


def get_reward(name: str, **kwargs: Any) -> RewardFn:
    """Build the reward registered as `name` with keyword arguments; one-line error otherwise."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered: {', '.join(sorted(REWARDS))}")
    factory = _resolve(name, REWARDS[name])
    try:
        return factory(**kwargs)
    except TypeError as e:
        raise ValueError(f"reward {name!r}: {e}") from None
