"""Logged tuples replayed into online batches: an off-policy term beside the on-policy loss.

Each online step draws `round(fraction * batch_size)` rows of logged (prompt, response, reward
[, log mu]) tuples, splits them across the step's minibatches and adds, per minibatch,

    awr:        -mean(w * log pi(y|x) / |y|),  w = min(exp((r - b(x)) / T), max_weight) / mean(w)
                (advantage-weighted regression, Peng et al. 2019)
    importance: -mean(min(pi/mu, clip_max) * (r - b(x)) * log pi(y|x))
                (off-policy REINFORCE with truncated importance weights)

to the online loss, times `coef`. b(x) is the prompt's mean logged reward (the logging
policy's value there). The log-probs are of the policy as it is now, at temperature 1; the
rows are drawn from their own generator, so a run without replay draws exactly what it drew
before. The maths is in `feedbackrl.algos`; this module holds the data and the draws.
"""

from __future__ import annotations

import torch

from feedbackrl.algos import advantage_weights, offpolicy_pg_loss, weighted_nll_loss
from feedbackrl.policy.model import Policy
from feedbackrl.train.config import ReplayConfig
from feedbackrl.train.offline_data import load_tuples, prompt_mean_rewards

# Replay rows are drawn from a generator seeded apart from the loop's own.
SEED_OFFSET = 7919


class LoggedReplay:
    def __init__(self, cfg: ReplayConfig, batch_size: int, seed: int):
        self.cfg = cfg
        self.data = load_tuples(cfg.data, need_propensity=cfg.method == "importance",
                                completion_prefix=cfg.completion_prefix)
        if len(self.data) == 0:
            raise ValueError("replay.data: no logged rows")
        self.baseline = prompt_mean_rewards(self.data.prompts, self.data.rewards)
        self.rows_per_step = max(1, round(cfg.fraction * batch_size))
        self.generator = torch.Generator().manual_seed(seed + SEED_OFFSET)

    def draw(self) -> torch.Tensor:
        """Row indices for one online step, without repeats within the step: [rows_per_step]."""
        n = len(self.data)
        if self.rows_per_step <= n:
            return torch.randperm(n, generator=self.generator)[: self.rows_per_step]
        return torch.randint(n, (self.rows_per_step,), generator=self.generator)

    def loss(self, policy: Policy, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The off-policy term on rows `idx` and its stats (prefixed `replay/`)."""
        d, cfg = self.data, self.cfg
        rows = idx.tolist()
        logp = policy.sequence_logprobs([d.prompts[i] for i in rows], [d.responses[i] for i in rows])
        rewards = d.rewards[idx].to(logp)
        baseline = self.baseline[idx].to(logp)
        if cfg.method == "awr":
            w = advantage_weights(rewards - baseline, temperature=cfg.temperature, max_weight=cfg.max_weight,
                                  normalise="batch")
            lengths = torch.tensor([len(policy.encode_completion(d.responses[i])) for i in rows], device=logp.device)
            loss = weighted_nll_loss(logp, w, lengths)
            stats = {"mean_weight": float(w.mean()), "max_weight": float(w.max())}
        else:
            loss, stats = offpolicy_pg_loss(logp, d.logged_logprobs[idx].to(logp), rewards,
                                            clip_max=cfg.clip_max, baseline=baseline)
        stats = {f"replay/{k}": float(v) for k, v in stats.items()}
        stats["replay/loss"] = loss.item()
        stats["replay/logprob"] = float(logp.detach().mean())
        return loss, stats
