"""Procedurally generated integer arithmetic: the verifiable task that proves learning.

A problem is `a op b` with operands of `digits` digits; the reward is 1 for the exact answer
and 0 otherwise, plus an optional small format reward for answering with a bare integer.
The warm start can imitate a sloppy demonstrator (`demo_error_rate`) so that RL has
something to fix. The held-out set is drawn from a separate seed and any problem in it is excluded from
training, so accuracy is measured on problems the policy never saw.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample
from feedbackrl.tasks.base import Prompt

_INT = re.compile(r"^\s*(-?\d+)\s*$")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass
class ArithmeticConfig:
    digits: int = 2  # operands have 1..digits digits
    ops: list[str] = field(default_factory=lambda: ["+"])
    allow_negative: bool = False  # if False, a - b is drawn with a >= b
    eval_size: int = 200
    eval_seed: int = 12345
    format_reward: float = 0.0  # added for a bare-integer answer, even when wrong
    # Fraction of warm-start demonstrations that are off by one: the warm start imitates a
    # sloppy demonstrator, so the policy knows the format and roughly the answer but is often
    # wrong; RL with the exact-answer reward is what fixes it.
    demo_error_rate: float = 0.0

    def validate(self) -> None:
        if not 1 <= self.digits <= 6:
            raise ValueError("digits: must be between 1 and 6")
        bad = [op for op in self.ops if op not in _OPS]
        if bad or not self.ops:
            raise ValueError(f"ops: must be a non-empty subset of {list(_OPS)}, got {self.ops}")
        if self.eval_size < 1:
            raise ValueError("eval_size: must be >= 1")
        distinct = self.distinct_problems()
        if self.eval_size > distinct // 2:
            # the held-out problems are excluded from training: too many would leave none to train on
            raise ValueError(f"eval_size: {self.eval_size} held-out problems is more than half of the {distinct} "
                             f"distinct problems of digits={self.digits}, ops={self.ops}; use at most {distinct // 2}")
        if not 0.0 <= self.demo_error_rate < 1.0:
            raise ValueError("demo_error_rate: must be within [0, 1)")
        if not 0.0 <= self.format_reward <= 1.0:
            raise ValueError("format_reward: must be within [0, 1]")


    def distinct_problems(self) -> int:
        """How many different problems the generator can draw."""
        n = 10 ** self.digits  # operands 0 .. 10**digits - 1
        pairs = {"+": n * n, "*": n * n, "-": n * n if self.allow_negative else n * (n + 1) // 2}
        return sum(pairs[op] for op in set(self.ops))


def render(a: int, op: str, b: int) -> str:
    return f"Q: {a}{op}{b}=? A:"


def parse_answer(completion: str) -> int | None:
    m = _INT.match(completion)
    return int(m.group(1)) if m else None


class ExactAnswerReward:
    """1 for the exact integer answer, else 0; `format_reward` for a bare integer."""

    name = "exact_answer"

    def __init__(self, format_reward: float = 0.0):
        self.format_reward = format_reward

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        results = []
        for s in samples:
            got = parse_answer(s.completion)
            correct = got is not None and got == int(s.reference)
            score = (1.0 if correct else 0.0) + (self.format_reward if got is not None else 0.0)
            results.append(RewardResult(score, {"expected": int(s.reference), "parsed": got, "correct": correct}))
        return results


class ArithmeticTask:
    name = "arithmetic"

    def __init__(self, config: ArithmeticConfig | None = None):
        self.config = config or ArithmeticConfig()
        self._eval = self._draw(random.Random(self.config.eval_seed), self.config.eval_size, exclude=set())
        self._eval_keys = {p.text for p in self._eval}

    def _problem(self, rng: random.Random) -> Prompt:
        cfg = self.config
        hi = 10 ** cfg.digits - 1
        a, b = rng.randint(0, hi), rng.randint(0, hi)
        op = rng.choice(cfg.ops)
        if op == "-" and not cfg.allow_negative and b > a:
            a, b = b, a
        return Prompt(render(a, op, b), reference=_OPS[op](a, b), metadata={"a": a, "b": b, "op": op})

    def _draw(self, rng: random.Random, n: int, exclude: set[str]) -> list[Prompt]:
        out, seen, tries = [], set(), 0
        while len(out) < n:
            p = self._problem(rng)
            tries += 1
            if p.text in exclude or (p.text in seen and tries < 50 * n):
                continue
            seen.add(p.text)
            out.append(p)
        return out

    def train_prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        out = []
        while len(out) < n:
            p = self._problem(rng)
            if p.text not in self._eval_keys:
                out.append(p)
        return out

    def eval_prompts(self) -> list[Prompt]:
        return list(self._eval)

    def reward(self) -> ExactAnswerReward:
        return ExactAnswerReward(self.config.format_reward)

    def evaluate(self, samples: Sequence[Sample]) -> dict[str, float]:
        n = max(len(samples), 1)
        parsed = [parse_answer(s.completion) for s in samples]
        correct = sum(1 for s, g in zip(samples, parsed) if g is not None and g == int(s.reference))
        return {"accuracy": correct / n, "format": sum(g is not None for g in parsed) / n}

    def sft_pairs(self, n: int, rng: random.Random) -> list[tuple[str, str]]:
        pairs = []
        for p in self.train_prompts(n, rng):
            answer = p.reference + (1 if rng.random() < self.config.demo_error_rate else 0)
            pairs.append((p.text, f" {answer}"))
        return pairs

    def corpus(self) -> Iterable[str]:
        rng = random.Random(0)
        return [f"{p.text} {p.reference}" for p in self.train_prompts(2000, rng)]
