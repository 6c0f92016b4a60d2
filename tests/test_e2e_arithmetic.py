"""End to end: short seeded GRPO and PPO runs from a sloppy warm start raise held-out accuracy.

The setting is the configs' own, shrunk: one-digit sums, a 2-layer model, 200 SFT steps on a
demonstrator that answers one too high 60% of the time (greedy accuracy starts near a third).
Measured while writing this (seed 0): GRPO 0.32 -> 0.78 (seeds 1, 2: +42, +30 points), PPO
0.32 -> 0.60. The bars leave room for the float-level differences between machines: with 50
held-out problems one more right answer is 2 points, and the warm start alone moves by 6.
Seeded runs are deterministic on one machine (feedbackrl/train/seeding.py, tests/test_seeding.py;
with two threads some CPU kernels were not, before that) but not across CPUs: on the machine of
2026-12-01's third session this GRPO run gives 0.38 -> 0.60 (+22) in every process, at that
session's first commit as at its last, where other machines gave +25 to +46; PPO gave 0.34 -> 0.62
on one machine and 0.40 -> 0.58 on another. So both bars are 15 points: a run that does not learn
stays within a few points of its start. The issue's 25 points are checked on the full configs
as shipped by the last test here (~3-4 minutes each; README has the measured runs). The shrunk
run keeps the SFT batch of 64 it was measured with.
"""

import json

import pytest

from feedbackrl.config import load_config
from feedbackrl.train.config import RunConfig
from feedbackrl.train.recipe import train

SHRUNK = [
    "progress=false", "tensorboard=false", "arithmetic.digits=1", "arithmetic.eval_size=50",
    "model.tiny.hidden_size=64", "model.tiny.num_layers=2", "model.tiny.num_heads=2",
    "model.tiny.intermediate_size=128", "sft.steps=200", "sft.examples=500", "sft.batch_size=64",
    "steps=40", "batch_size=256", "algo.minibatch_size=128", "algo.epochs=2", "eval_every=0",
]


def run(tmp_path, config, name):
    cfg = load_config(config, RunConfig, [f"out_dir={tmp_path}", f"name={name}", *SHRUNK])
    summary = train(cfg, log=lambda *_: None)
    return summary, tmp_path / name


@pytest.mark.slow
def test_grpo_raises_heldout_accuracy(tmp_path):
    summary, run_dir = run(tmp_path, "configs/arithmetic_grpo.yaml", "e2e-grpo")
    before, after = summary["initial_eval"]["accuracy"], summary["final_eval"]["accuracy"]
    assert after - before >= 0.15, (before, after)
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["final_eval"]["accuracy"] == after and on_disk["steps"] == 40
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and "reward/mean" in rows[-1]
    first, last = (sum(r["reward/mean"] for r in rows[i:i + 10]) / 10 for i in (0, 30))
    assert last > first + 0.1, (first, last)  # the sampled reward rises too, not only greedy accuracy


@pytest.mark.slow
def test_ppo_raises_heldout_accuracy(tmp_path):
    summary, run_dir = run(tmp_path, "configs/arithmetic_ppo.yaml", "e2e-ppo")
    before, after = summary["initial_eval"]["accuracy"], summary["final_eval"]["accuracy"]
    assert after - before >= 0.15, (before, after)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "loss/value" in rows[-1] and "kl" in rows[-1]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["configs/arithmetic_grpo.yaml", "configs/arithmetic_ppo.yaml"])
def test_the_shipped_configs_raise_heldout_accuracy_by_25_points(tmp_path, config):
    """The issue's bar on the configs as shipped, not shrunk (~3-4 minutes each on 2 cores): the
    warm start has to learn the sums for RL to have anything to sharpen, and whether it does
    depends on the CPU's float rounding (benchmarks/results/arithmetic-2026-12-05/README.md: 1000
    SFT steps did on a Xeon and not on an EPYC). A machine where this fails needs a longer warm
    start, not a lower bar."""
    cfg = load_config(config, RunConfig, [f"out_dir={tmp_path}", "progress=false", "tensorboard=false"])
    summary = train(cfg, log=lambda *_: None)
    before, after = summary["initial_eval"]["accuracy"], summary["final_eval"]["accuracy"]
    assert after - before >= 0.25, (before, after)
