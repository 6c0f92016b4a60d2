"""Replay of logged tuples in the online loop: off leaves the step as it was, on adds the
off-policy term (checked by hand) and reports it."""

import json
import math

import pytest
import torch

from feedbackrl.config import ConfigError, from_dict
from feedbackrl.policy import Policy
from feedbackrl.tasks.arithmetic import ArithmeticTask
from feedbackrl.train.config import ReplayConfig, RunConfig
from feedbackrl.train.online import OnlineTrainer
from feedbackrl.train.replay import LoggedReplay

# arithmetic prompts as the task renders them; rewards differ within each prompt
ROWS = [
    {"prompt": "Q: 6+6=? A:", "response": "12", "reward": 1.0, "logged_logprob": -2.0},
    {"prompt": "Q: 6+6=? A:", "response": "13", "reward": 0.0, "logged_logprob": -3.0},
    {"prompt": "Q: 5+9=? A:", "response": "14", "reward": 2.0, "logged_logprob": -1.5},
    {"prompt": "Q: 5+9=? A:", "response": "41", "reward": 0.0, "logged_logprob": -4.0},
]


@pytest.fixture
def logged(tmp_path):
    path = tmp_path / "tuples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


def run_config(tmp_path, name, replay=None):
    data = {
        "name": name, "out_dir": str(tmp_path), "steps": 2, "batch_size": 8,
        "arithmetic": {"digits": 1, "eval_size": 8}, "generation": {"max_new_tokens": 3},
        "algo": {"name": "grpo", "group_size": 4, "minibatch_size": 4, "epochs": 1},
        "optim": {"lr": 1e-2}, "progress": False, "tensorboard": False, "log_rollouts": False,
    }
    if replay is not None:
        data["replay"] = replay
    return from_dict(RunConfig, data, "test")


def two_steps(cfg, model_dir, tmp_path):
    torch.manual_seed(0)
    trainer = OnlineTrainer(cfg, ArithmeticTask(cfg.arithmetic), Policy.load(model_dir), tmp_path / cfg.name)
    metrics = [trainer.train_step() for _ in range(2)]
    return {k: v.clone() for k, v in trainer.policy.state_dict().items()}, metrics


def test_fraction_zero_leaves_the_step_unchanged(tiny_model_dir, tmp_path, logged):
    plain, plain_metrics = two_steps(run_config(tmp_path, "plain"), tiny_model_dir, tmp_path)
    off, off_metrics = two_steps(run_config(tmp_path, "off", {"fraction": 0.0, "data": [logged]}), tiny_model_dir, tmp_path)
    for k in plain:
        assert torch.equal(plain[k], off[k]), k
    assert not any(k.startswith("replay/") for m in off_metrics for k in m)
    assert [m["reward/mean"] for m in plain_metrics] == [m["reward/mean"] for m in off_metrics]


def test_fraction_above_zero_changes_the_update_and_is_counted(tiny_model_dir, tmp_path, logged):
    plain, plain_metrics = two_steps(run_config(tmp_path, "plain"), tiny_model_dir, tmp_path)
    on, on_metrics = two_steps(run_config(tmp_path, "on", {"fraction": 0.5, "data": [logged], "coef": 1.0}),
                               tiny_model_dir, tmp_path)
    # the rollout of the first step is drawn before any replay: the same samples, the same rewards
    assert on_metrics[0]["reward/mean"] == plain_metrics[0]["reward/mean"]
    assert any(not torch.equal(plain[k], on[k]) for k in plain)
    for m in on_metrics:
        assert m["replay/rows"] == 4  # round(0.5 * batch_size 8)
        assert math.isfinite(m["replay/loss"]) and m["replay/loss"] != 0.0
        assert m["replay/mean_weight"] == pytest.approx(1.0)  # batch-normalised AWR weights


def test_replay_without_data_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="replay.data"):
        run_config(tmp_path, "x", {"fraction": 0.25})
    with pytest.raises(ConfigError, match="fraction"):
        run_config(tmp_path, "x", {"fraction": 1.5, "data": ["x.jsonl"]})


def test_awr_term_by_hand(tiny_model_dir, logged):
    replay = LoggedReplay(ReplayConfig(fraction=0.5, data=[logged], completion_prefix=" ", temperature=0.5,
                                       max_weight=3.0), batch_size=8, seed=0)
    policy = Policy.load(tiny_model_dir).eval()
    idx = torch.tensor([0, 1, 2, 3])
    loss, stats = replay.loss(policy, idx)
    with torch.no_grad():
        logp = policy.sequence_logprobs([r["prompt"] for r in ROWS], [" " + r["response"] for r in ROWS])
    lengths = torch.tensor([len(policy.encode_completion(" " + r["response"])) for r in ROWS], dtype=logp.dtype)
    # prompt means 0.5 and 1.0: advantages 0.5, -0.5, 1, -1; exp(A / 0.5) clipped at 3
    raw = torch.tensor([math.e, math.exp(-1), 3.0, math.exp(-2)], dtype=logp.dtype)
    w = raw / raw.mean()
    assert loss.item() == pytest.approx(float(-(w * logp / lengths).mean()), rel=1e-5)
    assert stats["replay/max_weight"] == pytest.approx(float(w.max()), rel=1e-5)


def test_importance_term_by_hand(tiny_model_dir, tmp_path):
    policy = Policy.load(tiny_model_dir).eval()
    with torch.no_grad():
        own = policy.sequence_logprobs([r["prompt"] for r in ROWS], [" " + r["response"] for r in ROWS])
    # logged with the policy's own propensities: every importance weight is 1
    rows = [dict(r, logged_logprob=float(lp)) for r, lp in zip(ROWS, own)]
    path = tmp_path / "own.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    replay = LoggedReplay(ReplayConfig(fraction=0.5, data=[str(path)], method="importance"), batch_size=8, seed=0)
    loss, stats = replay.loss(policy, torch.tensor([0, 1, 2, 3]))
    adv = torch.tensor([0.5, -0.5, 1.0, -1.0], dtype=own.dtype)
    assert loss.item() == pytest.approx(float(-(adv * own).mean()), rel=1e-4)
    assert stats["replay/mean_weight"] == pytest.approx(1.0, rel=1e-4)


def test_draws_do_not_repeat_within_a_step_and_follow_the_seed(logged):
    a = LoggedReplay(ReplayConfig(fraction=0.5, data=[logged]), batch_size=8, seed=3)
    b = LoggedReplay(ReplayConfig(fraction=0.5, data=[logged]), batch_size=8, seed=3)
    first = a.draw()
    assert sorted(first.tolist()) == [0, 1, 2, 3]
    assert torch.equal(first, b.draw())
