"""A plain per-sample function as a `RewardFn`, for rewards too small to deserve a class.

    def ends_politely(completion: str, reference) -> float:
        return float(completion.rstrip().endswith("Thank you."))

    reward = FunctionReward(ends_politely)          # name "ends_politely"

The function may return a number, a (score, details) pair, or a `RewardResult`. An exception
in one sample marks only that sample with an error (kind and message), the rest are scored.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample

ScoreFunction = Callable[[str, Any], "float | tuple[float, dict] | RewardResult"]


class FunctionReward:
    def __init__(self, fn: ScoreFunction, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [self._score(s) for s in samples]

    def _score(self, sample: Sample) -> RewardResult:
        try:
            out = self.fn(sample.completion, sample.reference)
        except Exception as e:  # noqa: BLE001 - one bad sample must not sink the batch
            return RewardResult(0.0, {}, f"{type(e).__name__}: {e}")
        if isinstance(out, RewardResult):
            return out
        if isinstance(out, tuple):
            score, details = out
            return RewardResult(float(score), dict(details))
        return RewardResult(float(out), {})
