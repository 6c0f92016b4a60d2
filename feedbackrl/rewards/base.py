"""The reward interface.

A reward is any callable taking a sequence of samples (prompt, completion, reference) and
returning one `RewardResult` per sample. `details` says why the score is what it is; `error`
marks an infrastructure failure (the sandbox could not start, a checker timed out), which the
loops mask out of the loss and count rather than scoring as 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from feedbackrl.sample import Sample


@dataclass
class RewardResult:
    score: float
    details: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class RewardFn(Protocol):
    name: str

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]: ...


def score_samples(reward: RewardFn, samples: Sequence[Sample]) -> list[RewardResult]:
    """Score samples in place (reward, details, error) and return the results.

    A reward that raises is an infrastructure failure for the whole batch: every sample is
    marked with the error instead of crashing the loop.
    """
    try:
        results = reward(samples)
    except Exception as e:  # noqa: BLE001 - a broken reward must not kill training
        results = [RewardResult(0.0, {}, f"{type(e).__name__}: {e}") for _ in samples]
    if len(results) != len(samples):
        raise ValueError(f"reward {getattr(reward, 'name', reward)!r} returned {len(results)} results for {len(samples)} samples")
    for s, r in zip(samples, results):
        s.reward = None if r.error else float(r.score)
        s.details = dict(r.details)
        s.error = r.error
    return list(results)
