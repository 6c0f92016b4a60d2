"""AdamW and its schedule (train/optim.py)."""

import math

import pytest
import torch

from feedbackrl.policy.fast_decode import parameter_versions
from feedbackrl.train.optim import build_optimizer, lr_lambda


def test_an_adamw_step_bumps_the_version_counters_a_decode_record_relies_on():
    """The optimizer is plain (foreach) AdamW, whose step bumps every parameter's version counter:
    that is how a decode's record tells that the weights it ran with have changed
    (policy/fast_decode.py, DecodeRecord.fresh). The fused kernel does not bump them (torch 2.13),
    and on the arithmetic config it also moved the SFT warm start into a worse basin (loss 0.49 vs
    0.16 after 1000 steps, so RL from it did not learn; again with 1500 steps on a 2-core EPYC,
    2026-12-05: the shipped GRPO config went 0.33 -> 0.255): it is not used, though it would take
    ~2 ms off a GRPO step (benchmarks/README.md)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    optimizer, _ = build_optimizer(model, lr=0.1, weight_decay=0.01)
    assert not optimizer.defaults.get("fused")
    x = torch.randn(5, 4)
    for _ in range(2):
        before = parameter_versions(model)
        optimizer.zero_grad()
        model(x).pow(2).sum().backward()
        optimizer.step()
        assert all(a != b for a, b in zip(before, parameter_versions(model)))


@pytest.mark.parametrize("schedule,expected", [
    ("constant", [0.5, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.5, 1.0, 1.0, 2 / 3, 1 / 3]),
    ("cosine", [0.5, 1.0, 1.0, 0.75, 0.25]),
])
def test_warmup_then_schedule(schedule, expected):
    # 2 warm-up steps of 5: (step + 1) / 2, then the schedule over the 3 steps left, from 1 at step 2
    factor = lr_lambda(schedule, warmup_steps=2, total_steps=5)
    assert [factor(s) for s in range(5)] == pytest.approx(expected)
    assert math.isclose(lr_lambda("cosine", 0, 4)(2), 0.5)
