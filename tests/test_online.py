"""The online loop: GRPO and PPO steps, exact resume, error masking."""

import json

import pytest
import torch

from feedbackrl.config import from_dict
from feedbackrl.policy import Policy
from feedbackrl.rewards.base import RewardResult
from feedbackrl.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
from feedbackrl.train import checkpoint as ckpt
from feedbackrl.train.config import RunConfig
from feedbackrl.train.online import OnlineTrainer


def small_config(tmp_path, **over):
    data = {
        "name": "t", "out_dir": str(tmp_path), "steps": 4, "batch_size": 8,
        "arithmetic": {"digits": 1, "eval_size": 8},
        "generation": {"max_new_tokens": 3},
        "algo": {"name": "grpo", "group_size": 4, "minibatch_size": 4, "epochs": 2},
        "optim": {"lr": 1e-2}, "progress": False, "tensorboard": False, "log_rollouts": False,
    }
    for k, v in over.items():
        section, _, key = k.partition("__")
        if key:
            data.setdefault(section, {})[key] = v
        else:
            data[section] = v
    return from_dict(RunConfig, data, "test")


def trainer_for(cfg, model_dir, run_dir, task=None):
    torch.manual_seed(0)
    policy = Policy.load(model_dir, value_head=cfg.algo.name == "ppo")
    return OnlineTrainer(cfg, task or ArithmeticTask(cfg.arithmetic), policy, run_dir)


def weights(policy):
    return {k: v.clone() for k, v in policy.state_dict().items()}


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_resumed_run_ends_with_identical_weights(tiny_model_dir, tmp_path, algo):
    extra = {"algo__name": algo, "algo__kl_coef": 0.05}
    if algo == "ppo":
        extra["algo__kl_in"] = "reward"
    cfg = small_config(tmp_path / "a", **extra)
    straight = trainer_for(cfg, tiny_model_dir, tmp_path / "a")
    straight.run()
    expected = weights(straight.policy)

    cfg_b = small_config(tmp_path / "b", **extra)
    first = trainer_for(cfg_b, tiny_model_dir, tmp_path / "b")
    out = first.run(stop_after=2)
    assert out["stopped"] and out["steps"] == 2
    latest = ckpt.latest_checkpoint(tmp_path / "b")
    assert latest is not None and latest.name == "step-000002"
    # a fresh process would load the checkpointed weights and state; do the same here
    resumed_policy = Policy.load(latest, value_head=algo == "ppo")
    resumed = OnlineTrainer(cfg_b, ArithmeticTask(cfg_b.arithmetic), resumed_policy, tmp_path / "b",
                            reference=first.reference)
    resumed.run(resume_state=ckpt.load_trainer_state(latest))
    assert resumed.step == 4
    got = weights(resumed.policy)
    assert expected.keys() == got.keys()
    for k in expected:
        assert torch.equal(expected[k], got[k]), k
    # metrics.jsonl holds each step exactly once after the resume
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_latest_pointer_is_written_last(tiny_model_dir, tmp_path):
    policy = Policy.load(tiny_model_dir)
    ckpt.save_checkpoint(tmp_path, 1, policy, {"step": 1})
    ckpt.save_checkpoint(tmp_path, 2, policy, {"step": 2})
    ckpt.save_checkpoint(tmp_path, 3, policy, {"step": 3})
    assert ckpt.latest_checkpoint(tmp_path).name == "step-000003"
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-000002", "step-000003"]
    # a pointer to a half-written checkpoint is not trusted
    (tmp_path / "checkpoints" / "latest").write_text("step-000009")
    assert ckpt.latest_checkpoint(tmp_path) is None


class FlakyReward:
    """Fails (infrastructure error) on every other sample; scores the rest 1 if correct."""

    name = "flaky"

    def __call__(self, samples):
        return [RewardResult(0.0, {}, "sandbox did not start") if i % 2 else RewardResult(1.0, {"components": {"a": 1.0}})
                for i, _ in enumerate(samples)]


class FlakyTask(ArithmeticTask):
    def reward(self):
        return FlakyReward()


def test_reward_errors_are_masked_and_counted(tiny_model_dir, tmp_path):
    cfg = small_config(tmp_path)
    trainer = trainer_for(cfg, tiny_model_dir, tmp_path, task=FlakyTask(cfg.arithmetic))
    metrics = trainer.train_step()
    assert metrics["reward/errors"] == 4  # half of 8
    assert metrics["reward/mean"] == 1.0  # errors are not scored as 0
    assert metrics["reward/a"] == 1.0  # per-component values are logged


def test_grpo_step_moves_probability_toward_rewarded_answers(tiny_model_dir, tmp_path):
    """One GRPO update raises the log-prob of above-average completions of a prompt."""
    cfg = small_config(tmp_path, algo__epochs=1, algo__minibatch_size=8, optim__lr=5e-3)
    trainer = trainer_for(cfg, tiny_model_dir, tmp_path)
    roll, _ = trainer._rollout()
    rewards = torch.arange(8, dtype=torch.float32) % 4  # synthetic, distinct within each group
    roll.rewards = rewards
    batch = roll.batch
    batch.extras.update(trainer._advantages(roll, None))
    batch.extras["valid"] = roll.valid
    before = trainer.policy.token_logprobs(batch)["logprobs"].detach()
    trainer._update(batch)
    after = trainer.policy.token_logprobs(batch)["logprobs"].detach()
    delta = ((after - before) * batch.completion_mask).sum(-1)
    best, worst = rewards == 3, rewards == 0
    assert delta[best].mean() > delta[worst].mean()


def test_lora_run_resumes_exactly(tiny_model_dir, tmp_path):
    """Through the recipe, as `feedbackrl train` runs it: stop at 2 of 3 steps, run again."""
    from feedbackrl.train.recipe import train

    def cfg_for(name):
        return small_config(tmp_path, name=name, steps=3, model={"path": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8}})

    train(cfg_for("straight"), log=lambda *_: None)
    train(cfg_for("stopped"), log=lambda *_: None, stop_after=2)
    summary = train(cfg_for("stopped"), log=lambda *_: None)
    assert summary["steps"] == 3
    a = Policy.load(tmp_path / "straight" / "checkpoints" / "step-000003")
    b = Policy.load(tmp_path / "stopped" / "checkpoints" / "step-000003")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    assert set(json.loads((tmp_path / "stopped" / "summary.json").read_text())) >= {"initial_eval", "final_eval", "steps", "wall_seconds"}
