"""The unit that flows through every loop: one prompt, one completion, its log-probs and reward.

Online, `Policy.generate` makes samples; offline, a store turns logged tuples into samples.
Everything downstream (reward, advantages, losses) sees the same type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    prompt: str
    completion: str
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    # Per-token log-probs of the completion under the policy that produced it, as a forward pass
    # computes them (at the sampling temperature, before any decoding constraint or top-p): the
    # loss's pi_old. Offline, the logging policy's.
    logprobs: list[float] = field(default_factory=list)
    # Task-specific reference the reward needs: the answer, unit tests, the shopper intent.
    reference: Any = None
    group_id: int = 0
    reward: float | None = None
    details: dict = field(default_factory=dict)
    # Set when the reward could not be computed (sandbox failed to start, checker timed out):
    # such samples are masked out of the loss and counted, never scored as 0 or 1.
    error: str | None = None
    metadata: dict = field(default_factory=dict)
    # Filled by a loop when a logged propensity (whole list / completion) is known from a log.
    logged_logprob: float | None = None
    # Per-token log-probs under the distribution each token was actually drawn from (a decoding
    # constraint and top-p applied and renormalised; 0 for greedy); None when not sampled here.
    sampling_logprobs: list[float] | None = None
    # [T, V] bool tensor, when sampled with a constraint and `mask_logprobs`: the tokens allowed
    # at each completion position; `logprobs` (and a training forward pass) are normalised over them
    allowed: Any = None

    @property
    def sequence_logprob(self) -> float:
        """log pi_behaviour(completion | prompt): the propensity of the whole completion as it
        was drawn (the sampling distribution when known, else `logprobs`)."""
        return float(sum(self.sampling_logprobs if self.sampling_logprobs is not None else self.logprobs))
