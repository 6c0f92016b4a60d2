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


def trainer_for(cfg, model_dir, run_dir, task=None, device="cpu"):
    torch.manual_seed(0)
    policy = Policy.load(model_dir, value_head=cfg.algo.name == "ppo", device=device)
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


def _batch_with_advantages(trainer, rewards):
    """A rollout of `trainer` scored with the given rewards instead of the task's, ready for `_update`."""
    roll, _ = trainer._rollout()
    roll.rewards = rewards
    return trainer._prepared_batch(roll)[0]


def test_grpo_step_moves_probability_toward_rewarded_answers(tiny_model_dir, tmp_path):
    """One GRPO update raises the log-prob of above-average completions of a prompt."""
    cfg = small_config(tmp_path, algo__epochs=1, algo__minibatch_size=8, optim__lr=5e-3)
    trainer = trainer_for(cfg, tiny_model_dir, tmp_path)
    rewards = torch.arange(8, dtype=torch.float32) % 4  # synthetic, distinct within each group
    batch = _batch_with_advantages(trainer, rewards)
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


def _count_rows(policy):
    """Wrap `policy.token_logprobs` to record how many rows each call ran."""
    seen = []
    original = policy.token_logprobs

    def counting(batch, **kw):
        seen.append(len(batch))
        return original(batch, **kw)

    policy.token_logprobs = counting
    return seen


def _skip_trainer(model_dir, tmp_path, skip):
    """A GRPO trainer with the zero-advantage skip on or off; both draw the same rollouts. The
    update runs its forward pass (no replay of the sampling pass: tested on its own below)."""
    cfg = small_config(tmp_path / str(skip), algo__epochs=1, algo__minibatch_size=8,
                       algo__skip_zero_advantage=skip, algo__reuse_sampling_pass=False, optim__lr=5e-3)
    trainer = trainer_for(cfg, model_dir, tmp_path / str(skip))
    torch.manual_seed(1)
    return trainer


def test_zero_advantage_rows_skip_the_pass_with_the_same_update(tiny_model_dir, tmp_path):
    """Two groups of 4: one with equal rewards (advantage 0), one with a spread. With the skip only
    the second group's rows go through the model, and two updates on the batch (the second at
    ratio != 1) end with the losses, gradients and weights of the update that ran every row."""
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 2.0])
    runs = {}
    for skip in (True, False):
        trainer = _skip_trainer(tiny_model_dir, tmp_path, skip)
        batch = _batch_with_advantages(trainer, rewards)
        seen = _count_rows(trainer.policy)
        stats, grads = [], []
        for _ in range(2):
            stats.append(trainer._update(batch))
            grads.append({n: p.grad.clone() for n, p in trainer.policy.named_parameters() if p.grad is not None})
        runs[skip] = (seen, stats, weights(trainer.policy), batch, grads)
    (seen_on, stats_on, w_on, b_on, g_on), (seen_off, stats_off, w_off, b_off, g_off) = runs[True], runs[False]
    assert torch.equal(b_on.completion_ids, b_off.completion_ids)
    assert seen_on == [4, 4] and seen_off == [8, 8]
    assert [s["update/skipped_rows"] for s in stats_on] == [0.5, 0.5]
    assert "update/skipped_rows" not in stats_off[0]
    for a, b in zip(stats_on, stats_off):
        assert a["loss/policy"] == pytest.approx(b["loss/policy"], rel=1e-5, abs=1e-7)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert stats_on[1]["loss/policy"] != stats_on[0]["loss/policy"]  # the second epoch saw ratio != 1
    # the same gradients to float rounding (the matmuls run over other shapes); the second update's
    # come from weights that already differ by the Adam step's rounding (see below) ...
    for epoch, (a, b) in enumerate(zip(g_on, g_off)):
        assert a.keys() == b.keys()
        for k in a:
            scale = float(b[k].abs().max())
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=(1e-5 if epoch == 0 else 1e-4) * scale, msg=k)
    # ... and so the same weights: Adam divides by sqrt(v), so a rounding difference in a
    # near-zero gradient moves its weight by a share of the step size that depends on the machine's
    # kernels (up to 2.4e-5 here on an AVX2 machine, 0.5% of the 5e-3 learning rate; under 2e-5 on
    # an AVX-512 one); a wrong gradient moves weights by the order of the learning rate itself
    for k in w_on:
        torch.testing.assert_close(w_on[k], w_off[k], rtol=0, atol=1e-4, msg=k)


def test_a_minibatch_without_signal_still_steps_the_optimizer_the_same(tiny_model_dir, tmp_path):
    """Every reward equal: one row runs (a zero gradient on every parameter), and AdamW's step
    from its momentum moves the weights exactly as the full pass's zero gradient does."""
    signal = torch.tensor([0.0, 1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 2.0])
    flat = torch.ones(8)
    runs = {}
    for skip in (True, False):
        trainer = _skip_trainer(tiny_model_dir, tmp_path, skip)
        trainer._update(_batch_with_advantages(trainer, signal))
        before = weights(trainer.policy)
        batch = _batch_with_advantages(trainer, flat)
        seen = _count_rows(trainer.policy)
        stats = trainer._update(batch)
        runs[skip] = (seen, stats, before, weights(trainer.policy))
    assert runs[True][0] == [1] and runs[False][0] == [8]
    assert runs[True][1]["update/skipped_rows"] == 7 / 8
    assert runs[True][1]["grad_norm"] == 0.0 == runs[False][1]["grad_norm"]
    moved = any(not torch.equal(runs[True][2][k], runs[True][3][k]) for k in runs[True][3])
    assert moved  # momentum from the first step
    for k in runs[True][3]:
        torch.testing.assert_close(runs[True][3][k], runs[False][3][k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("extra", [{"algo__kl_coef": 0.05}, {"algo__entropy_coef": 0.01},
                                   {"algo__name": "ppo", "algo__kl_coef": 0.05, "algo__kl_in": "reward"}])
def test_zero_advantage_rows_still_run_when_the_loss_reads_them(tiny_model_dir, tmp_path, extra):
    """A KL term in the loss, an entropy bonus or PPO's value loss has a gradient on every row."""
    cfg = small_config(tmp_path, algo__epochs=1, algo__minibatch_size=8, **extra)
    trainer = trainer_for(cfg, tiny_model_dir, tmp_path)
    batch = _batch_with_advantages(trainer, torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 2.0]))
    batch.extras["advantages"][:4] = 0.0  # GRPO's already are; PPO's GAE would rarely give an exact 0
    seen = _count_rows(trainer.policy)
    stats = trainer._update(batch)
    assert seen == [8] and "update/skipped_rows" not in stats


def test_the_update_replays_the_sampling_pass_until_the_first_optimizer_step(tiny_model_dir, tmp_path):
    """`algo.reuse_sampling_pass`: on the same rollout, the same loss, gradient and weights as the
    update that runs its forward pass; only the first minibatch of a step (before any weight
    changes) is replayed: one of four with two minibatches over two epochs, none for PPO."""
    rewards = torch.tensor([1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 2.0])
    runs = {}
    for reuse in (True, False):
        cfg = small_config(tmp_path / str(reuse), algo__epochs=1, algo__minibatch_size=8, optim__lr=5e-3,
                           algo__reuse_sampling_pass=reuse)
        trainer = trainer_for(cfg, tiny_model_dir, tmp_path / str(reuse))
        before = weights(trainer.policy)
        stats = trainer._update(_batch_with_advantages(trainer, rewards))
        grads = {n: p.grad.clone() for n, p in trainer.policy.named_parameters()}
        runs[reuse] = (stats, grads, weights(trainer.policy))
    (stats_on, g_on, w_on), (stats_off, g_off, w_off) = runs[True], runs[False]
    assert stats_on["update/replayed"] == 1.0 and stats_off["update/replayed"] == 0.0
    assert stats_on["loss/policy"] == pytest.approx(stats_off["loss/policy"], rel=1e-5, abs=1e-7)
    for k in g_off:
        torch.testing.assert_close(g_on[k], g_off[k], rtol=1e-5, atol=1e-5 * float(g_off[k].abs().max()), msg=k)
    assert max(float((w_off[k] - w).abs().max()) for k, w in before.items()) > 1e-3  # the step moved weights
    for k in w_off:  # ... and both moved them alike (Adam and rounding: see the skip test above)
        torch.testing.assert_close(w_on[k], w_off[k], rtol=0, atol=1e-4, msg=k)

    # through train_step: the record is dropped with the step; later minibatches run the forward
    cfg = small_config(tmp_path / "mb", algo__epochs=2, algo__minibatch_size=4)
    trainer = trainer_for(cfg, tiny_model_dir, tmp_path / "mb")
    assert trainer.train_step()["update/replayed"] == 0.25
    assert trainer._record is None and trainer.policy.decode_record is None
    cfg = small_config(tmp_path / "ppo", algo__name="ppo")
    assert trainer_for(cfg, tiny_model_dir, tmp_path / "ppo").train_step()["update/replayed"] == 0.0
