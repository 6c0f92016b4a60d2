"""The offline loops: learn a policy from logged data alone, no generation.

    pairs  (prompt, chosen, rejected)          -> dpo | ipo   dpo_loss vs a frozen reference
    tuples (prompt, response, reward)          -> awr | rwr   advantage_weights + weighted_nll_loss
    tuples (prompt, response, reward, log mu)  -> opg         offpolicy_pg_loss (clipped importance weights)

The maths is in `feedbackrl.algos`; this module reads the data, computes what the losses
take (sequence log-probs, baselines), steps the optimizer, logs and saves. The reference of
DPO is the policy the loop starts from (after the optional warm start); its log-probs are
computed once before training, so no second model sits in memory.

Writes to `<out_dir>/<name>/`: `config.json`, `metrics.jsonl`, `checkpoints/step-N/` (the
trained policy, loadable with `Policy.load`), and `summary.json`.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from feedbackrl.train.seeding import seed_run
from feedbackrl.algos import (
    advantage_weights, dpo_loss, offpolicy_pg_loss, prompt_reward_to_go_advantages, rewards_to_go,
    token_weighted_nll_loss, weighted_nll_loss,
)
from feedbackrl.policy.model import Policy
from feedbackrl.tasks.arithmetic import ArithmeticConfig
from feedbackrl.tasks.shop.reward import item_spans
from feedbackrl.train import checkpoint as ckpt
from feedbackrl.train.config import GenerationConfig, ModelConfig, OptimConfig
from feedbackrl.train.credit import span_token_rewards
from feedbackrl.train.offline_data import (
    PairData, TupleData, best_responses, load_pairs, load_tuples, prompt_mean_rewards,
)
from feedbackrl.train.optim import build_optimizer
from feedbackrl.train.run_log import RunLog
from feedbackrl.train.sft import train_sft

PAIR_METHODS = ("dpo", "ipo")
TUPLE_METHODS = ("awr", "rwr", "opg")


@dataclass
class PreferenceOptions:
    """dpo and ipo."""

    beta: float = 0.1  # strength of the pull towards the reference; IPO's target margin is 1 / (2 beta)
    label_smoothing: float = 0.0  # assumed share of flipped labels (conservative DPO); dpo only

    def validate(self) -> None:
        if self.beta <= 0:
            raise ValueError("beta: must be > 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError("label_smoothing: must be in [0, 0.5)")


@dataclass
class WeightedOptions:
    """awr (advantage = reward - mean reward of the prompt in the log) and rwr (advantage = reward)."""

    temperature: float = 1.0  # in reward units: weight = exp(advantage / temperature)
    max_weight: float = 20.0  # weight clipping; one lucky row must not dominate
    normalise: Literal["none", "batch"] = "batch"  # divide by the batch mean weight: a stable loss scale
    length_normalise: bool = True  # per-token mean log-prob, so long responses do not dominate
    # sequence: the whole response weighted by its reward's advantage; item: each token by what
    # the response earned from that token on (its items' `item_rewards`) against the prompt's
    # logged mean at the same position (needs the tuples' `item_rewards` column)
    credit: Literal["sequence", "item"] = "sequence"

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ValueError("temperature: must be > 0")
        if self.max_weight <= 0:
            raise ValueError("max_weight: must be > 0")


@dataclass
class OffPolicyOptions:
    """opg: -mean(min(pi/mu, clip_max) (r - b) log pi)."""

    clip_max: float = 10.0  # truncation of the importance weight pi/mu
    # b: none = 0; dataset_mean = mean logged reward; prompt_mean = mean logged reward of the prompt
    baseline: Literal["none", "dataset_mean", "prompt_mean"] = "prompt_mean"

    def validate(self) -> None:
        if self.clip_max <= 0:
            raise ValueError("clip_max: must be > 0")


@dataclass
class OfflineWarmStart:
    """Imitation before the offline loss. `best`: each prompt's highest-reward logged response
    (the chosen side of pairs); `all`: every logged response, i.e. behaviour cloning of the
    logging policy, which puts pi near mu so the off-policy gradient's weights are not all ~0;
    `task`: the task's own imitation pairs (`task.sft_pairs`: on the shop, static search's
    lists, the logger's mode), which uses no logged interaction at all."""

    steps: int = 0  # 0 skips it
    source: Literal["best", "all", "task"] = "best"
    examples: int = 2000  # `task` only: (prompt, completion) pairs drawn from the task
    save: bool = False  # keep the warm-started policy in <run_dir>/warm_start (a baseline to compare with)
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 20

    def validate(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps: must be >= 0 and batch_size >= 1")


@dataclass
class OfflineConfig:
    """One offline run. Fields shared with `RunConfig` (model, task, arithmetic, shop,
    generation) mean the same there."""

    name: str = "offline"
    out_dir: str = "runs"
    seed: int = 0
    method: Literal["dpo", "ipo", "awr", "rwr", "opg"] = "awr"
    data: list[str] = field(default_factory=list)  # .parquet/.jsonl files: pairs for dpo/ipo, tuples otherwise
    completion_prefix: str = ""  # put before every logged response (" " for the shop: SKUs are ' SKU' tokens)
    # The task builds the embedded tokenizer (model.path "tiny") and evaluates the result on its
    # held-out prompts; "none" trains without evaluating (a "tiny" model is then built from the data).
    task: Literal["none", "arithmetic", "shop"] = "none"
    arithmetic: ArithmeticConfig = field(default_factory=ArithmeticConfig)
    shop: dict[str, Any] = field(default_factory=dict)  # ShopTaskConfig fields
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(max_new_tokens=8))  # evaluation only
    warm_start: OfflineWarmStart = field(default_factory=OfflineWarmStart)
    dpo: PreferenceOptions = field(default_factory=PreferenceOptions)
    weighted: WeightedOptions = field(default_factory=WeightedOptions)
    opg: OffPolicyOptions = field(default_factory=OffPolicyOptions)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4))
    epochs: int = 1
    batch_size: int = 32  # rows (tuples or pairs) per optimizer step
    max_steps: int = 0  # stop after this many steps; 0 = all epochs
    evaluate: bool = True  # before and after training, when a task is set
    progress: bool = True
    tensorboard: bool = False

    def validate(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name: must be a plain directory name, got {self.name!r}")
        if not self.data:
            raise ValueError("data: give at least one .parquet or .jsonl file")
        if self.epochs < 1 or self.batch_size < 1 or self.max_steps < 0:
            raise ValueError("epochs and batch_size: must be >= 1, max_steps >= 0")
        if self.model.path == "tiny" and self.model.lora is not None:
            raise ValueError("model.lora: not supported with the tiny model")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


# ---------------------------------------------------------------------------- the losses per method
# Each takes the rows of one minibatch and returns (loss, stats); the formulas are in algos.

class PreferenceObjective:
    """DPO / IPO on pairs, reference log-probs computed once from the starting policy."""

    def __init__(self, policy: Policy, data: PairData, options: PreferenceOptions, variant: str, chunk: int):
        self.data, self.options, self.variant = data, options, variant
        self.ref_chosen = _frozen_logprobs(policy, data.prompts, data.chosen, chunk)
        self.ref_rejected = _frozen_logprobs(policy, data.prompts, data.rejected, chunk)

    def __call__(self, policy: Policy, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        d = self.data
        prompts = [d.prompts[i] for i in idx]
        # one forward pass for both sides
        both = policy.sequence_logprobs(prompts + prompts, [d.chosen[i] for i in idx] + [d.rejected[i] for i in idx])
        pi_chosen, pi_rejected = both[: len(idx)], both[len(idx):]
        ref_c = self.ref_chosen[idx].to(both)
        ref_r = self.ref_rejected[idx].to(both)
        return dpo_loss(pi_chosen, pi_rejected, ref_c, ref_r, beta=self.options.beta, variant=self.variant,
                        label_smoothing=self.options.label_smoothing if self.variant == "sigmoid" else 0.0)


class WeightedRegressionObjective:
    """AWR (advantage = reward - the prompt's mean logged reward) or RWR (advantage = reward).

    With `credit: item` every token gets its own weight: what the logged response earned from
    that token on (the `item_rewards` of its items, each on the token that completes the item),
    minus, for AWR, the mean of the same over the prompt's logged rows at that position. A list
    whose third item was clicked then pushes up that item (and the picks before it), not its
    unclicked neighbours below it."""

    def __init__(self, policy: Policy, data: TupleData, options: WeightedOptions, method: str):
        self.data, self.options = data, options
        baseline = prompt_mean_rewards(data.prompts, data.rewards) if method == "awr" else torch.zeros_like(data.rewards)
        self.advantages = data.rewards - baseline
        self.lengths = (torch.tensor([len(policy.encode_completion(r)) for r in data.responses])
                        if options.length_normalise else None)
        self.token_advantages = self._token_advantages(policy, method) if options.credit == "item" else None

    def _token_advantages(self, policy: Policy, method: str) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, T] per-token advantages and mask from the rows' item rewards (class docstring)."""
        d = self.data
        if d.item_rewards is None:
            raise ValueError("weighted.credit: item needs the tuples' item_rewards column")
        rows = []
        for response, items, reward in zip(d.responses, d.item_rewards, d.rewards.tolist()):
            ids = policy.encode_completion(response)
            # an item the tokenizer wrote otherwise gets no span: its reward falls to the last token
            spans = item_spans(policy.decode(ids), response.split(), items)
            rows.append(span_token_rewards(ids, policy.decode, spans, reward))
        width = max(map(len, rows))
        rewards = torch.zeros((len(rows), width), dtype=torch.float64)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, row in enumerate(rows):
            rewards[i, :len(row)] = torch.tensor(row, dtype=torch.float64)
            mask[i, :len(row)] = True
        if method == "awr":
            index: dict[str, int] = {}
            prompt_ids = torch.tensor([index.setdefault(p, len(index)) for p in d.prompts])
            advantages = prompt_reward_to_go_advantages(rewards, mask, prompt_ids)
        else:  # rwr: the reward to go itself
            advantages = rewards_to_go(rewards, mask)
        return advantages, mask

    def __call__(self, policy: Policy, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        d, o = self.data, self.options
        if self.token_advantages is not None:
            return self._item_loss(policy, idx)
        logp = policy.sequence_logprobs([d.prompts[i] for i in idx], [d.responses[i] for i in idx])
        adv = self.advantages[idx].to(logp)
        w = advantage_weights(adv, temperature=o.temperature, max_weight=o.max_weight, normalise=o.normalise)
        lengths = self.lengths[idx].to(logp.device) if self.lengths is not None else None
        loss = weighted_nll_loss(logp, w, lengths)
        return loss, {"mean_weight": float(w.mean()), "max_weight": float(w.max()), "mean_advantage": float(adv.mean())}

    def _item_loss(self, policy: Policy, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        d, o = self.data, self.options
        lp, mask = policy.completion_token_logprobs([d.prompts[i] for i in idx], [d.responses[i] for i in idx])
        advantages, own_mask = self.token_advantages
        t = lp.shape[1]
        adv = advantages[idx, :t].to(lp)
        valid = own_mask[idx, :t].to(lp.device) & mask.bool()
        w = torch.zeros_like(lp)
        # one weight per token, normalised over the batch's tokens
        w[valid] = advantage_weights(adv[valid], temperature=o.temperature, max_weight=o.max_weight,
                                     normalise=o.normalise)
        loss = token_weighted_nll_loss(lp, w, valid)
        return loss, {"mean_weight": float(w[valid].mean()), "max_weight": float(w[valid].max()),
                      "mean_advantage": float(adv[valid].mean())}


class OffPolicyGradientObjective:
    """REINFORCE on logged tuples, reweighted by the clipped ratio pi(response)/mu(response)."""

    def __init__(self, data: TupleData, options: OffPolicyOptions):
        if data.logged_logprobs is None:
            raise ValueError("opg needs the logging propensity (column logged_logprob or propensity)")
        self.data, self.options = data, options
        if options.baseline == "prompt_mean":
            self.baseline = prompt_mean_rewards(data.prompts, data.rewards)
        elif options.baseline == "dataset_mean":
            self.baseline = torch.full_like(data.rewards, float(data.rewards.mean()))
        else:
            self.baseline = torch.zeros_like(data.rewards)

    def __call__(self, policy: Policy, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        d = self.data
        logp = policy.sequence_logprobs([d.prompts[i] for i in idx], [d.responses[i] for i in idx])
        return offpolicy_pg_loss(logp, d.logged_logprobs[idx].to(logp), d.rewards[idx].to(logp),
                                 clip_max=self.options.clip_max, baseline=self.baseline[idx].to(logp))


@torch.no_grad()
def _frozen_logprobs(policy: Policy, prompts: list[str], completions: list[str], chunk: int) -> torch.Tensor:
    was_training = policy.training
    policy.eval()
    out = [policy.sequence_logprobs(prompts[i:i + chunk], completions[i:i + chunk]).double().cpu()
           for i in range(0, len(prompts), chunk)]
    policy.train(was_training)
    return torch.cat(out)


# ---------------------------------------------------------------------------- the recipe

def build_task(cfg: OfflineConfig):
    """The task named by the config, or None."""
    if cfg.task == "arithmetic":
        from feedbackrl.tasks.arithmetic import ArithmeticTask

        return ArithmeticTask(cfg.arithmetic)
    if cfg.task == "shop":
        from feedbackrl.config import from_dict
        from feedbackrl.tasks.shop.task import ShopTask, ShopTaskConfig

        return ShopTask(from_dict(ShopTaskConfig, cfg.shop, "shop"))
    return None


def load_data(cfg: OfflineConfig) -> PairData | TupleData:
    if cfg.method in PAIR_METHODS:
        return load_pairs(cfg.data, cfg.completion_prefix)
    return load_tuples(cfg.data, need_propensity=cfg.method == "opg", completion_prefix=cfg.completion_prefix,
                       need_item_rewards=cfg.method in ("awr", "rwr") and cfg.weighted.credit == "item")


def _base_model(cfg: OfflineConfig, task, data: PairData | TupleData, run_dir: Path) -> Path | str:
    """The model directory training starts from; a "tiny" one is built once per run directory."""
    if cfg.model.path != "tiny":
        return cfg.model.path
    out = run_dir / "model"
    if not (out / ".complete").exists():
        from feedbackrl.policy.tiny import build_tiny_model

        if task is not None:
            corpus = list(task.corpus())
            extra = task.extra_tokens() if hasattr(task, "extra_tokens") else ()
        else:
            texts = data.chosen + data.rejected if isinstance(data, PairData) else data.responses
            corpus, extra = [p + t for p, t in zip(data.prompts * 2, texts)], ()
        build_tiny_model(out, corpus, extra_tokens=extra, config=cfg.model.tiny)
        (out / ".complete").write_text("")
    return out


def _warm_start_pairs(cfg: OfflineConfig, data: PairData | TupleData, task=None) -> list[tuple[str, str]]:
    if cfg.warm_start.source == "task":
        if task is None or not hasattr(task, "sft_pairs"):
            raise ValueError("warm_start.source: 'task' needs a task with imitation pairs (task: shop or arithmetic)")
        return task.sft_pairs(cfg.warm_start.examples, random.Random(cfg.seed + 1))
    if isinstance(data, PairData):
        return list(dict.fromkeys(zip(data.prompts, data.chosen)))
    if cfg.warm_start.source == "all":
        return list(zip(data.prompts, data.responses))
    return best_responses(data.prompts, data.responses, data.rewards)


def policy_samples(policy: Policy, task, prompts: list, max_new_tokens: int) -> list:
    """Greedy completions of `prompts` (task Prompts) carrying their references. With a
    constraining task (the shop), each prompt may only name what its search can return: the
    SKUs of its segment, as the logger's and BM25's candidates are."""
    samples = []
    for i in range(0, len(prompts), 256):
        chunk = prompts[i:i + 256]
        constraint = None
        if hasattr(task, "constraint"):
            segments = [p.metadata.get("segment") for p in chunk]
            constraint = (task.constraint(policy.tokenizer, segments=segments) if all(segments)
                          else task.constraint(policy.tokenizer))
        out = policy.generate([p.text for p in chunk], 1, greedy=True, max_new_tokens=max_new_tokens,
                              constraint=constraint)
        for s, p in zip(out, chunk):
            s.reference, s.metadata = p.reference, dict(p.metadata)
        samples += out
    return samples


def _evaluate(policy: Policy, task, cfg: OfflineConfig) -> dict[str, float]:
    """The task's metrics of greedy completions of its held-out prompts."""
    return task.evaluate(policy_samples(policy, task, task.eval_prompts(), cfg.generation.max_new_tokens))


def build_objective(cfg: OfflineConfig, policy: Policy, data: PairData | TupleData):
    if cfg.method in PAIR_METHODS:
        return PreferenceObjective(policy, data, cfg.dpo, "sigmoid" if cfg.method == "dpo" else "ipo", cfg.batch_size)
    if cfg.method in ("awr", "rwr"):
        return WeightedRegressionObjective(policy, data, cfg.weighted, cfg.method)
    return OffPolicyGradientObjective(data, cfg.opg)


def train_offline(cfg: OfflineConfig, *, log: Callable[[str], None] = print, task=None) -> dict[str, Any]:
    """Warm start (optional) -> `epochs` passes of the method's loss -> checkpoint -> summary."""
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    t0 = time.perf_counter()
    seed_run(cfg.seed)
    random.seed(cfg.seed)
    data = load_data(cfg)
    task = task if task is not None else build_task(cfg)
    base = _base_model(cfg, task, data, run_dir)
    policy = Policy.load(base, lora=cfg.model.lora, device=cfg.model.device, dtype=cfg.model.dtype)
    policy.fast_decode = cfg.generation.fast_decode
    summary: dict[str, Any] = {"method": cfg.method, "rows": len(data), "data": list(cfg.data)}

    if cfg.warm_start.steps:
        ws = cfg.warm_start
        pairs = _warm_start_pairs(cfg, data, task)
        losses = train_sft(policy, pairs, steps=ws.steps, batch_size=ws.batch_size, lr=ws.lr,
                           warmup_steps=ws.warmup_steps, seed=cfg.seed)
        log(f"warm start ({ws.source}): {ws.steps} steps on {len(pairs)} responses, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        summary["warm_start_loss"] = losses[-1]
        if ws.save:
            policy.save(run_dir / "warm_start")
            summary["warm_start_policy"] = str(run_dir / "warm_start")

    evaluating = cfg.evaluate and task is not None
    if evaluating:
        summary["eval_before"] = _evaluate(policy, task, cfg)

    objective = build_objective(cfg, policy, data)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch if not cfg.max_steps else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    o = cfg.optim
    optimizer, scheduler = build_optimizer(policy, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas,
                                           warmup_steps=o.warmup_steps, total_steps=total, schedule=o.schedule)
    generator = torch.Generator().manual_seed(cfg.seed)
    run_log = RunLog(run_dir, total, progress=False, tensorboard=cfg.tensorboard)
    progress = _Progress(total, cfg.method) if cfg.progress else None
    policy.train()
    step, losses = 0, []
    try:
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(data), generator=generator).tolist()
            for start in range(0, len(order), cfg.batch_size):
                if step >= total:
                    break
                t_step = time.perf_counter()
                loss, stats = objective(policy, order[start:start + cfg.batch_size])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), o.max_grad_norm)
                optimizer.step()
                scheduler.step()
                step += 1
                losses.append(loss.item())
                metrics = {"loss": losses[-1], "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                           "grad_norm": float(grad_norm), "time/step_s": time.perf_counter() - t_step, **stats}
                run_log.log(step, metrics)
                if progress is not None:
                    progress.update(step, losses[-1])
    finally:
        run_log.close()
        if progress is not None:
            progress.close()
    policy.eval()

    checkpoint = ckpt.save_checkpoint(run_dir, step, policy, {
        "step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": ckpt.rng_state(generator)})
    summary.update({
        "steps": step, "epochs": cfg.epochs, "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        # the mean of the last epoch's steps (or of all, if shorter): less noisy than one batch
        "final_epoch_loss": sum(losses[-steps_per_epoch:]) / len(losses[-steps_per_epoch:]) if losses else None,
        "checkpoint": str(checkpoint), "run_dir": str(run_dir),
    })
    if evaluating:
        summary["eval"] = _evaluate(policy, task, cfg)
    summary["wall_seconds"] = time.perf_counter() - t0
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


class _Progress:
    """A rich progress bar with the running loss (RunLog's own bar shows online figures)."""

    def __init__(self, total: int, description: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[status]}"), TimeRemainingColumn())
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, status="")

    def update(self, step: int, loss: float) -> None:
        self._bar.update(self._task, completed=step, status=f"loss {loss:.4f}")

    def close(self) -> None:
        self._bar.stop()
