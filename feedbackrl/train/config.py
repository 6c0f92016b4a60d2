"""The run config: one YAML file maps onto `RunConfig`; every field's default is documented here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from feedbackrl.policy.model import LoraSettings
from feedbackrl.policy.tiny import TinyModelConfig
from feedbackrl.tasks.arithmetic import ArithmeticConfig


@dataclass
class ModelConfig:
    # "tiny" builds the embedded default (tokenizer trained on the task's text + tiny Llama)
    # into <out_dir>/<name>/model; anything else is a local directory or a hub id.
    path: str = "tiny"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    lora: LoraSettings | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"


@dataclass
class GenerationConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    # decode Llama-architecture models with feedbackrl's lean decode step (policy/fast_decode.py)
    # instead of the model's own forward; the same maths, 6-20% faster sampling on the tiny model (benchmarks/README.md)
    fast_decode: bool = True

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ValueError("temperature: must be > 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p: must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens: must be >= 1")


@dataclass
class SFTConfig:
    steps: int = 0  # 0 skips the warm start
    batch_size: int = 64
    lr: float = 3e-3
    examples: int = 2000  # distinct (prompt, completion) pairs imitated; fewer = a more partial warm start
    warmup_steps: int = 20

    def validate(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.examples < 1:
            raise ValueError("steps, batch_size and examples: must be positive")


@dataclass
class AlgoConfig:
    name: Literal["grpo", "ppo"] = "grpo"
    group_size: int = 8  # G completions per prompt (GRPO); PPO may use 1
    epochs: int = 1  # passes over each rollout batch
    minibatch_size: int = 64  # samples per optimizer step
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    aggregation: Literal["seq_mean", "token_mean"] = "seq_mean"
    # GRPO: divide (r - group mean) by the group std, the batch std, or nothing (Dr. GRPO)
    advantage_scale: Literal["group", "batch", "none"] = "group"
    # "sequence": the whole score credits every token; "reward_to_go": a reward that says which
    # part of the completion earned what (details["spans"], e.g. the shop's per-item clicks)
    # credits each token with what is earned from it on (feedbackrl/train/credit.py)
    credit: Literal["sequence", "reward_to_go"] = "sequence"
    kl_coef: float = 0.0  # beta; 0 loads no reference model
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    kl_in: Literal["loss", "reward"] = "loss"  # PPO classic puts it in the per-token reward
    entropy_coef: float = 0.0
    # With a decoding constraint (the shop's catalog SKUs): train the policy that acts, the model
    # renormalised over the tokens the constraint allowed (invalid-action masking). Off, the
    # log-probs, entropy and KL are over the whole vocabulary: raising a sampled item then mostly
    # takes mass from tokens the constraint forbids anyway, not from the other items, and the
    # entropy bonus spreads mass onto forbidden tokens. No effect without a constraint.
    masked_policy: bool = False
    # Rows whose advantage is 0 on every token (a GRPO group whose rewards were all equal) skip the
    # update's forward and backward pass when nothing else in the loss reads them (no value loss,
    # no entropy bonus, no KL in the loss): their gradient is exactly 0 and the loss keeps the
    # whole minibatch's denominators, so the update is the same maths with fewer FLOPs
    skip_zero_advantage: bool = True
    # the update's first optimizer step back-propagates through the sampling pass's recorded matmul
    # outputs instead of running the forward again (same gradient; LlamaDecoder models, not PPO)
    reuse_sampling_pass: bool = True
    # PPO only
    gamma: float = 1.0
    lam: float = 0.95
    vf_coef: float = 0.1
    value_clip: float = 0.2
    whiten_advantages: bool = True

    def validate(self) -> None:
        if self.name == "grpo" and self.group_size < 2:
            raise ValueError(f"group_size: GRPO needs at least 2 samples per prompt, got {self.group_size}")
        if self.group_size < 1:
            raise ValueError("group_size: must be >= 1")
        if self.epochs < 1 or self.minibatch_size < 1:
            raise ValueError("epochs and minibatch_size: must be >= 1")
        if not (0 <= self.clip_eps_low < 1 and self.clip_eps_high >= 0):
            raise ValueError("clip_eps_low: must be in [0, 1) and clip_eps_high >= 0")
        if self.kl_coef < 0:
            raise ValueError("kl_coef: must be >= 0")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError("gamma and lam: must be in [0, 1]")


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    max_grad_norm: float = 1.0
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr: must be > 0")
        if len(self.betas) != 2:
            raise ValueError("betas: expected two numbers")


@dataclass
class ReplayConfig:
    """Logged (prompt, response, reward) tuples mixed into every online step as an off-policy
    term (feedbackrl/train/replay.py). fraction 0 turns it off and leaves the step unchanged."""

    fraction: float = 0.0  # logged rows per step = round(fraction * batch_size); 0 = off
    data: list[str] = field(default_factory=list)  # tuples .parquet/.jsonl (`feedbackrl logs convert --to tuples`)
    completion_prefix: str = " "  # put before every logged response (shop SKUs are ' SKU' tokens)
    # awr: advantage-weighted log-likelihood, weight min(exp((r - b(x)) / temperature), max_weight);
    # importance: off-policy REINFORCE, weight min(pi/mu, clip_max) (r - b(x)), needs the propensity.
    # b(x) is the prompt's mean logged reward.
    method: Literal["awr", "importance"] = "awr"
    coef: float = 1.0  # loss = online loss + coef * replay loss
    temperature: float = 0.5  # awr, in reward units
    max_weight: float = 20.0  # awr
    clip_max: float = 10.0  # importance

    def validate(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction: must be in [0, 1], got {self.fraction}")
        if self.coef < 0 or self.temperature <= 0 or self.max_weight <= 0 or self.clip_max <= 0:
            raise ValueError("coef: must be >= 0, and temperature, max_weight, clip_max > 0")


@dataclass
class RunConfig:
    """Everything one training run needs. `prompts_per_step` = batch_size / group_size."""

    name: str = "run"
    seed: int = 0
    out_dir: str = "runs"
    task: Literal["arithmetic", "shop"] = "arithmetic"
    arithmetic: ArithmeticConfig = field(default_factory=ArithmeticConfig)
    shop: dict[str, Any] = field(default_factory=dict)  # see feedbackrl.tasks.shop (ShopConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    steps: int = 100
    # samples generated per step = prompts x algo.group_size; must be divisible by group_size
    batch_size: int = 128
    eval_every: int = 0  # 0 = only before and after training
    checkpoint_every: int = 0  # 0 = only at the end
    max_minutes: float = 0.0  # stop early (still evaluated and saved) after this wall time; 0 = no limit
    log_rollouts: bool = True  # keep every scored sample in runs/<name>/rollouts.parquet
    tensorboard: bool = True  # when tensorboard is installed
    progress: bool = True

    def validate(self) -> None:
        if self.steps < 0:
            raise ValueError("steps: must be >= 0")
        g = self.algo.group_size
        if self.batch_size < 1 or self.batch_size % g:
            raise ValueError(f"batch_size: {self.batch_size} is not a positive multiple of algo.group_size = {g}")
        if self.batch_size % self.algo.minibatch_size and self.algo.minibatch_size < self.batch_size:
            raise ValueError(
                f"algo.minibatch_size: {self.algo.minibatch_size} does not divide batch_size = {self.batch_size}"
            )
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name: must be a plain directory name, got {self.name!r}")
        if self.replay.fraction > 0 and not self.replay.data:
            raise ValueError("replay.data: replay.fraction > 0 needs logged tuples to replay")

    @property
    def prompts_per_step(self) -> int:
        return self.batch_size // self.algo.group_size
