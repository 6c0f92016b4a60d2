"""Warm start by imitation: maximise the log-likelihood of (prompt, completion) pairs.

Used before RL so the policy already speaks the task's format (an answer, a list of SKUs).
A deliberately short warm start leaves room for RL to show what it adds.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import torch

from feedbackrl.algos.masked import masked_mean
from feedbackrl.policy.model import Policy
from feedbackrl.sample import Sample
from feedbackrl.train.optim import build_optimizer


def sft_samples(policy: Policy, pairs: Sequence[tuple[str, str]]) -> list[Sample]:
    return [
        Sample(prompt=p, completion=c, prompt_ids=policy.encode_prompt(p), completion_ids=policy.encode_completion(c))
        for p, c in pairs
    ]


def train_sft(
    policy: Policy,
    pairs: Sequence[tuple[str, str]],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    warmup_steps: int = 20,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Run `steps` minibatch steps of next-token NLL on the completions; returns the losses."""
    if not pairs:
        raise ValueError("SFT needs at least one (prompt, completion) pair")
    samples = sft_samples(policy, pairs)
    rng = random.Random(seed)
    optimizer, scheduler = build_optimizer(policy, lr=lr, warmup_steps=warmup_steps, total_steps=steps, schedule="cosine")
    policy.train()
    losses = []
    for step in range(1, steps + 1):
        batch = policy.collate(rng.sample(samples, min(batch_size, len(samples))))
        logprobs = policy.token_logprobs(batch)["logprobs"]
        loss = -masked_mean(logprobs, batch.completion_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    policy.eval()
    return losses
