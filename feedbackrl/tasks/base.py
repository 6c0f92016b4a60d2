"""What a task is: where prompts and their references come from, and the reward that fits them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

from feedbackrl.rewards.base import RewardFn
from feedbackrl.sample import Sample


@dataclass
class Prompt:
    text: str
    # What the reward needs to score a completion: the answer, the tests, the shopper intent.
    reference: Any = None
    metadata: dict = field(default_factory=dict)


class Task(Protocol):
    name: str

    def train_prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        """n training prompts drawn with `rng` (the loop owns the seed)."""

    def eval_prompts(self) -> list[Prompt]:
        """A fixed held-out set, never seen in training."""

    def reward(self) -> RewardFn:
        """The training reward for completions of this task's prompts."""

    def evaluate(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Metrics of greedy completions of `eval_prompts()` (e.g. {'accuracy': 0.4})."""

    def sft_pairs(self, n: int, rng: random.Random) -> list[tuple[str, str]]:
        """(prompt, completion) pairs for a warm start by imitation."""

    def corpus(self) -> Iterable[str]:
        """Text the embedded tokenizer is trained on."""
