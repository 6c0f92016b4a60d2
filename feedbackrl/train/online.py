"""The online loop: generate -> score -> advantages -> several epochs of minibatch updates ->
log -> checkpoint. PPO and GRPO differ only in how advantages are made and whether a value
head is trained; the maths is in `feedbackrl.algos`, this file only composes it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from feedbackrl.algos.advantages import expand_to_tokens, gae, group_advantages, group_reward_to_go_advantages
from feedbackrl.algos.kl import kl_divergence
from feedbackrl.algos.masked import aggregate, masked_mean, masked_whiten
from feedbackrl.algos.policy_loss import clipped_surrogate_loss, clipped_value_loss
from feedbackrl.policy.batch import Batch
from feedbackrl.policy.model import Policy
from feedbackrl.rewards.base import score_samples
from feedbackrl.rewards.combine import component_means
from feedbackrl.sample import Sample
from feedbackrl.tasks.base import Prompt, Task
from feedbackrl.train import checkpoint as ckpt
from feedbackrl.train.config import RunConfig
from feedbackrl.train.credit import token_reward_tensor
from feedbackrl.train.optim import build_optimizer
from feedbackrl.train.replay import LoggedReplay
from feedbackrl.train.run_log import RunLog


@dataclass
class Rollout:
    samples: list[Sample]
    batch: Batch
    valid: torch.Tensor  # [B] 1.0 where the reward was computed (no infrastructure error)
    rewards: torch.Tensor  # [B]


def generate_rollout(policy: Policy, task: Task, prompts: list[Prompt], cfg: RunConfig,
                     generator: torch.Generator, constraint=None, keep_record: bool = False) -> list[Sample]:
    g = cfg.algo.group_size
    gen = cfg.generation
    samples = policy.generate(
        [p.text for p in prompts], g, temperature=gen.temperature, top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens, constraint=constraint, generator=generator,
        mask_logprobs=cfg.algo.masked_policy, keep_record=keep_record,
    )
    for s in samples:
        p = prompts[s.group_id]
        s.reference, s.metadata = p.reference, dict(p.metadata)
    return samples


def evaluate_policy(policy: Policy, task: Task, cfg: RunConfig, constraint=None) -> tuple[dict[str, float], list[Sample]]:
    """Greedy completions of the held-out prompts, scored by the task's own metrics."""
    prompts = task.eval_prompts()
    samples = []
    for i in range(0, len(prompts), 256):
        chunk = prompts[i:i + 256]
        out = policy.generate([p.text for p in chunk], 1, greedy=True, max_new_tokens=cfg.generation.max_new_tokens,
                              constraint=constraint)
        for s, p in zip(out, chunk):
            s.reference, s.metadata = p.reference, dict(p.metadata)
        samples += out
    return task.evaluate(samples), samples


class OnlineTrainer:
    """PPO or GRPO on one task. `run()` trains `cfg.steps` steps (resuming if a checkpoint
    exists) and returns the summary written to `<run_dir>/summary.json`."""

    def __init__(self, cfg: RunConfig, task: Task, policy: Policy, run_dir: Path, reference: Policy | None = None,
                 on_step: Callable[[int, dict], None] | None = None):
        self.cfg, self.task, self.policy, self.run_dir = cfg, task, policy, Path(run_dir)
        policy.fast_decode = cfg.generation.fast_decode
        algo = cfg.algo
        self.is_ppo = algo.name == "ppo"
        self._record = None  # the current rollout's DecodeRecord (generate(keep_record=True))
        if self.is_ppo and policy.value_head is None:
            raise ValueError("PPO needs a policy loaded with value_head=True")
        self.reference = reference
        if algo.kl_coef > 0 and reference is None:
            # with LoRA the reference is the base model with adapters off; else a frozen copy
            self.reference = None if policy.is_lora else policy.frozen_copy()
        self.reward_fn = task.reward()
        self.optimizer, self.scheduler = build_optimizer(
            policy, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=cfg.optim.betas,
            warmup_steps=cfg.optim.warmup_steps, total_steps=cfg.steps, schedule=cfg.optim.schedule,
        )
        self.generator = torch.Generator().manual_seed(cfg.seed)  # minibatch order (host)
        # sampling draws on the policy's device: CUDA random numbers cannot come from a host generator
        dev = policy.device
        self.sample_generator = (self.generator if dev.type == "cpu"
                                 else torch.Generator(device=dev).manual_seed(cfg.seed))
        self.task_rng = random.Random(cfg.seed)
        # logged tuples mixed into every step as an off-policy term (replay.py); None = off
        self.replay = LoggedReplay(cfg.replay, cfg.batch_size, cfg.seed) if cfg.replay.fraction > 0 else None
        self.step = 0
        self.initial_eval: dict[str, float] | None = None
        self.history: list[dict[str, Any]] = []
        self.on_step = on_step
        self.elapsed_before_resume = 0.0

    # ------------------------------------------------------------------ helpers
    def _constraint(self):
        make = getattr(self.task, "constraint", None)
        return make(self.policy.tokenizer) if callable(make) else None

    @torch.no_grad()
    def _reference_logprobs(self, batch: Batch) -> torch.Tensor | None:
        if self.cfg.algo.kl_coef <= 0:
            return None
        temp = self.cfg.generation.temperature
        if self.reference is not None:
            return self.reference.token_logprobs(batch, temperature=temp)["logprobs"]
        with self.policy.adapters_disabled():
            return self.policy.token_logprobs(batch, temperature=temp)["logprobs"]

    def _advantages(self, roll: Rollout, ref_logprobs: torch.Tensor | None) -> dict[str, torch.Tensor]:
        algo, batch = self.cfg.algo, roll.batch
        mask = batch.completion_mask * roll.valid[:, None]
        per_token = None
        if algo.credit == "reward_to_go":
            per_token = token_reward_tensor(roll.samples, self.policy.decode, roll.rewards.detach().cpu().to(torch.float32),
                                            mask.shape[1]).to(device=mask.device, dtype=mask.dtype)
        if not self.is_ppo:
            if per_token is not None:
                return {"advantages": group_reward_to_go_advantages(per_token, mask, algo.group_size, scale=algo.advantage_scale)}
            adv = group_advantages(roll.rewards, algo.group_size, scale=algo.advantage_scale)
            return {"advantages": expand_to_tokens(adv, mask)}
        with torch.no_grad():
            values = self.policy.token_logprobs(batch, with_values=True)["values"] * mask
        # the sequence reward arrives on the last completion token
        lengths = batch.completion_mask.sum(-1).long().clamp_min(1)
        if per_token is not None:
            token_rewards = per_token * batch.completion_mask
        else:
            token_rewards = torch.zeros_like(mask)
            token_rewards[torch.arange(len(lengths), device=mask.device), lengths - 1] = roll.rewards
        if ref_logprobs is not None and algo.kl_in == "reward":
            token_rewards = token_rewards - algo.kl_coef * kl_divergence(batch.old_logprobs, ref_logprobs, algo.kl_estimator)
        adv, returns = gae(token_rewards * mask, values, mask, algo.gamma, algo.lam)
        if algo.whiten_advantages:
            adv = masked_whiten(adv, mask) * mask
        return {"advantages": adv, "returns": returns, "values": values}

    def _rollout(self) -> tuple[Rollout, dict[str, float]]:
        t0 = time.perf_counter()
        on_step = getattr(self.task, "on_train_step", None)
        if callable(on_step):
            on_step(self.step + 1)
        prepare = getattr(self.task, "prepare_policy", None)  # e.g. the shop's new-item start
        if callable(prepare):
            prepare(self.policy)
            prepare_ref = getattr(self.task, "prepare_reference", None)
            if self.reference is not None and callable(prepare_ref):
                prepare_ref(self.reference)
        prompts = self.task.train_prompts(self.cfg.prompts_per_step, self.task_rng)
        reuse = self.cfg.algo.reuse_sampling_pass and not self.is_ppo
        samples = generate_rollout(self.policy, self.task, prompts, self.cfg, self.sample_generator,
                                   self._constraint(), keep_record=reuse)
        # the decode's matmul outputs, read by the update while the weights are the sampled ones
        self._record = self.policy.decode_record if reuse else None
        self.policy.decode_record = None
        t1 = time.perf_counter()
        score_samples(self.reward_fn, samples)
        t2 = time.perf_counter()
        valid = torch.tensor([0.0 if s.error else 1.0 for s in samples])
        raw = torch.tensor([s.reward if s.reward is not None else float("nan") for s in samples])
        # an errored sample is masked out of the loss; for group statistics it stands at the
        # mean of its group's valid rewards so it neither helps nor hurts its siblings
        g = self.cfg.algo.group_size
        grouped = raw.view(-1, g)
        fill = torch.nanmean(grouped, dim=1, keepdim=True).nan_to_num(0.0).expand_as(grouped)
        rewards = torch.where(torch.isnan(grouped), fill, grouped).reshape(-1)
        # the whole step's tensors live where the policy does
        dev = self.policy.device
        batch = self.policy.collate(samples).to(dev)
        valid, rewards = valid.to(dev), rewards.to(dev)
        timing = {"time/generate_s": t1 - t0, "time/score_s": t2 - t1}
        return Rollout(samples, batch, valid, rewards), timing

    def _prepared_batch(self, roll: Rollout) -> tuple[Batch, torch.Tensor | None]:
        """The rollout's batch with what the update reads (advantages, validity, and the
        reference's log-probs when there is a KL term), and those reference log-probs."""
        batch = roll.batch
        ref_logprobs = self._reference_logprobs(batch)
        batch.extras.update(self._advantages(roll, ref_logprobs))
        if ref_logprobs is not None:
            batch.extras["ref_logprobs"] = ref_logprobs
        batch.extras["valid"] = roll.valid
        # each row's index in the decode, for the update's replay of the sampling pass
        batch.extras["rollout_row"] = torch.arange(len(batch), device=roll.valid.device)
        return batch, ref_logprobs

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        cfg, algo = self.cfg, self.cfg.algo
        t_start = time.perf_counter()
        roll, timing = self._rollout()
        batch, ref_logprobs = self._prepared_batch(roll)
        t_update = time.perf_counter()
        self.policy.train()
        stats: dict[str, list[float]] = {}
        n = len(batch)
        mb = min(algo.minibatch_size, n)
        # the step's logged rows, shared out over its minibatches (the same rows every epoch)
        replay_rows = self.replay.draw().tensor_split(-(-n // mb)) if self.replay is not None else None
        for _ in range(algo.epochs):
            order = torch.randperm(n, generator=self.generator)
            for i, start in enumerate(range(0, n, mb)):
                index = order[start:start + mb].to(batch.input_ids.device)
                replay_idx = replay_rows[i] if replay_rows is not None else None
                for k, v in self._update(batch.select(index), replay_idx).items():
                    stats.setdefault(k, []).append(v)
        self.policy.eval()
        self._record = None
        t_end = time.perf_counter()
        metrics = self._step_metrics(roll, ref_logprobs, stats)
        metrics.update(timing)
        metrics["time/update_s"] = t_end - t_update
        metrics["time/step_s"] = t_end - t_start
        metrics["samples_per_s"] = n / max(t_end - t_start, 1e-9)
        if replay_rows is not None:
            metrics["replay/rows"] = float(sum(len(r) for r in replay_rows))
        self._audit(roll.samples)
        return metrics

    def _update(self, mb: Batch, replay_idx: torch.Tensor | None = None) -> dict[str, float]:
        algo, temp = self.cfg.algo, self.cfg.generation.temperature
        mask = mb.completion_mask * mb.extras["valid"][:, None]
        live = self._rows_with_gradient(mb, mask)
        # until the first optimizer step the weights are the sampled ones: the forward pass is the
        # decode's, replayed from its record (Policy.token_logprobs checks that it covers the rows)
        replay = {"record": self._record, "rows": mb.extras.get("rollout_row")} if self._record is not None else {}
        if live is None or len(live) == len(mb):
            out = self.policy.token_logprobs(mb, temperature=temp, with_values=self.is_ppo,
                                             with_entropy=algo.entropy_coef > 0, **replay)
            logprobs = out["logprobs"]
        else:
            # only the rows that carry a gradient go through the model; the others keep their
            # behaviour log-probs (ratio 1), so the loss's denominators and its value are the
            # full minibatch's and their terms, A = 0, are exactly 0 either way
            if replay:
                replay["rows"] = replay["rows"][live]
            out = self.policy.token_logprobs(mb.select(live), temperature=temp, **replay)
            sub = out["logprobs"]
            logprobs = mb.old_logprobs.index_put((live,), F.pad(sub, (0, mb.old_logprobs.shape[1] - sub.shape[1])))
        loss, stats = clipped_surrogate_loss(
            logprobs, mb.old_logprobs, mb.extras["advantages"], mask,
            eps_low=algo.clip_eps_low, eps_high=algo.clip_eps_high, aggregation=algo.aggregation,
        )
        stats = {f"policy/{k}": float(v) for k, v in stats.items()}
        stats["update/replayed"] = float(bool(out.get("replayed", False)))
        if live is not None:  # the share of rows whose pass was skipped
            stats["update/skipped_rows"] = 1.0 - len(live) / max(len(mb), 1)
        stats["loss/policy"] = loss.item()
        if "ref_logprobs" in mb.extras and algo.kl_in == "loss":
            kl = aggregate(kl_divergence(logprobs, mb.extras["ref_logprobs"], algo.kl_estimator), mask, algo.aggregation)
            loss = loss + algo.kl_coef * kl
            stats["loss/kl"] = kl.item()
        if self.is_ppo:
            vloss = clipped_value_loss(out["values"], mb.extras["values"], mb.extras["returns"], mask, clip=algo.value_clip)
            loss = loss + algo.vf_coef * vloss
            stats["loss/value"] = vloss.item()
        if algo.entropy_coef > 0:
            ent = aggregate(out["entropy"], mask, algo.aggregation)
            loss = loss - algo.entropy_coef * ent
            stats["entropy"] = ent.item()
        if replay_idx is not None and len(replay_idx):
            replay_loss, replay_stats = self.replay.loss(self.policy, replay_idx)
            loss = loss + self.cfg.replay.coef * replay_loss
            stats.update(replay_stats)
        self.optimizer.zero_grad(set_to_none=True)
        if mask.sum() > 0:
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.optim.max_grad_norm)
            stats["grad_norm"] = float(grad_norm)
            self.optimizer.step()
        return stats

    def _rows_with_gradient(self, mb: Batch, mask: torch.Tensor) -> torch.Tensor | None:
        """With `algo.skip_zero_advantage`, the indices of the minibatch's rows whose loss term can
        have a gradient; None where the skip does not apply.

        A row whose advantage is 0 on every token (a GRPO group whose rewards were all equal)
        adds exactly 0 to the clipped surrogate and to its gradient; when nothing else in the loss
        reads the row (no value loss, no entropy bonus, no KL term in the loss) its forward and
        backward pass are pure cost. If no row is live, one row still runs: its zero gradient
        reaches every parameter, so the optimizer steps exactly as it would without the skip."""
        algo = self.cfg.algo
        if (not algo.skip_zero_advantage or self.is_ppo or algo.entropy_coef > 0
                or ("ref_logprobs" in mb.extras and algo.kl_in == "loss")):
            return None
        signal = (mb.extras["advantages"] * mask != 0).any(-1)
        live = signal.nonzero().squeeze(-1)
        if len(live) == 0:
            live = (mask.sum(-1) > 0).nonzero().squeeze(-1)[:1]
        return live if len(live) else None  # no valid token at all: nothing steps (below)

    def _step_metrics(self, roll: Rollout, ref_logprobs, stats: dict[str, list[float]]) -> dict[str, float]:
        valid = roll.valid.bool()
        rewards = roll.rewards[valid]
        m: dict[str, float] = {
            "reward/mean": float(rewards.mean()) if len(rewards) else float("nan"),
            "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
            "reward/errors": float((~valid).sum()),
            "completion_tokens/mean": float(roll.batch.completion_mask.sum(-1).mean()),
            "lr": float(self.scheduler.get_last_lr()[0]),
        }
        if ref_logprobs is not None:
            kl = kl_divergence(roll.batch.old_logprobs, ref_logprobs, self.cfg.algo.kl_estimator)
            m["kl"] = float(masked_mean(kl, roll.batch.completion_mask))
        for name, value in component_means(roll.samples).items():
            m[f"reward/{name}"] = value
        for k, v in stats.items():
            m[k] = sum(v) / len(v)
        return m

    def _audit(self, samples: list[Sample]) -> None:
        if self.cfg.log_rollouts:
            from feedbackrl.rewards.audit import write_rollouts

            write_rollouts(self.run_dir / "rollouts.parquet", samples, self.step + 1)

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(self.generator, self.task_rng),
            "sample_rng": None if self.sample_generator is self.generator else self.sample_generator.get_state(),
            "initial_eval": self.initial_eval,
            "history": self.history,
            "elapsed": self.elapsed_before_resume + (time.perf_counter() - self._t0),
            "task_state": self.task.state_dict() if hasattr(self.task, "state_dict") else None,
            **({"replay_rng": self.replay.generator.get_state()} if self.replay is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"], self.generator, self.task_rng)
        if self.sample_generator is not self.generator and state.get("sample_rng") is not None:
            self.sample_generator.set_state(state["sample_rng"])
        self.initial_eval = state["initial_eval"]
        self.history = state["history"]
        self.elapsed_before_resume = state.get("elapsed", 0.0)
        if state.get("task_state") is not None and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(state["task_state"])
        if self.replay is not None and state.get("replay_rng") is not None:
            self.replay.generator.set_state(state["replay_rng"])

    def save(self) -> Path:
        return ckpt.save_checkpoint(self.run_dir, self.step, self.policy, self.state_dict())

    # ------------------------------------------------------------------ the loop
    def run(self, resume_state: dict[str, Any] | None = None, stop_after: int | None = None) -> dict[str, Any]:
        """Train to `cfg.steps` (or `stop_after` steps, for tests of resumption)."""
        cfg = self.cfg
        self._t0 = time.perf_counter()
        if resume_state is not None:
            self.load_state_dict(resume_state)
        constraint = self._constraint()
        if self.initial_eval is None:
            self.initial_eval, _ = evaluate_policy(self.policy, self.task, cfg, constraint)
        log = RunLog(self.run_dir, cfg.steps, progress=cfg.progress, tensorboard=cfg.tensorboard,
                     description=f"{cfg.algo.name} {cfg.name}", resume=resume_state is not None)
        if resume_state is not None:
            log.truncate_after(self.step)
        last = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        try:
            while self.step < last:
                if cfg.max_minutes and self._elapsed() > cfg.max_minutes * 60:
                    break
                metrics = self.train_step()
                self.step += 1
                self.scheduler.step()
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    evals, _ = evaluate_policy(self.policy, self.task, cfg, constraint)
                    metrics.update({f"eval/{k}": v for k, v in evals.items()})
                log.log(self.step, metrics)
                self.history.append({"step": self.step, **{k: v for k, v in metrics.items() if k.startswith(("reward/", "eval/", "kl"))}})
                if self.on_step is not None:
                    self.on_step(self.step, metrics)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        finally:
            log.close()
        self.save()
        if self.step < cfg.steps and stop_after is not None:
            return {"steps": self.step, "stopped": True}
        final_eval, final_samples = evaluate_policy(self.policy, self.task, cfg, constraint)
        return {
            "name": cfg.name,
            "algo": cfg.algo.name,
            "task": cfg.task,
            "initial_eval": self.initial_eval,
            "final_eval": final_eval,
            "steps": self.step,
            "wall_seconds": self._elapsed(),
            "samples": self.step * cfg.batch_size,
        }

    def _elapsed(self) -> float:
        return self.elapsed_before_resume + (time.perf_counter() - self._t0)
