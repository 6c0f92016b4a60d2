"""End to end: a short seeded GRPO run from a sloppy warm start raises held-out accuracy."""

import json

import pytest

from feedbackrl.config import load_config
from feedbackrl.train.config import RunConfig
from feedbackrl.train.recipe import train


@pytest.mark.slow
def test_grpo_raises_heldout_accuracy(tmp_path):
    cfg = load_config("configs/arithmetic_grpo.yaml", RunConfig, [
        f"out_dir={tmp_path}", "name=e2e", "progress=false", "tensorboard=false",
        "arithmetic.digits=1", "arithmetic.eval_size=30",
        "model.tiny.hidden_size=64", "model.tiny.num_layers=2", "model.tiny.num_heads=2",
        "model.tiny.intermediate_size=128",
        "sft.steps=200", "sft.examples=500", "steps=20", "batch_size=64", "algo.minibatch_size=64",
        "eval_every=0",
    ])
    summary = train(cfg, log=lambda *_: None)
    before, after = summary["initial_eval"]["accuracy"], summary["final_eval"]["accuracy"]
    assert after - before >= 0.25, (before, after)
    on_disk = json.loads((tmp_path / "e2e" / "summary.json").read_text())
    assert on_disk["final_eval"]["accuracy"] == after and on_disk["steps"] == 20
    lines = (tmp_path / "e2e" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 20 and "reward/mean" in json.loads(lines[-1])
