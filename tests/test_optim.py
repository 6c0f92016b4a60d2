"""AdamW and its schedule (train/optim.py)."""

import math

import pytest
import torch

from feedbackrl.policy.fast_decode import parameter_versions
from feedbackrl.train.optim import build_optimizer, lr_lambda


def test_the_fused_adamw_step_is_adamw_and_bumps_the_version_counters():
    """On a CPU float32 model the fused kernel runs; its step equals the plain AdamW step to float
    rounding, and every parameter's version counter moves (a decode record relies on them)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    reference = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    reference.load_state_dict(model.state_dict())
    optimizer, _ = build_optimizer(model, lr=0.1, weight_decay=0.01)
    plain = torch.optim.AdamW(reference.parameters(), lr=0.1, weight_decay=0.01, betas=(0.9, 0.99), foreach=False)
    assert optimizer.defaults["fused"]
    x = torch.randn(5, 4)
    for _ in range(3):
        before = parameter_versions(model)
        for m, opt in ((model, optimizer), (reference, plain)):
            opt.zero_grad()
            m(x).pow(2).sum().backward()
            opt.step()
        assert all(a != b for a, b in zip(before, parameter_versions(model)))
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_a_dtype_the_fused_kernel_refuses_falls_back_to_plain_adamw():
    model = torch.nn.Linear(2, 2).to(torch.complex64)
    optimizer, _ = build_optimizer(model, lr=0.1)
    assert not optimizer.defaults.get("fused")
    model(torch.ones(1, 2, dtype=torch.complex64)).abs().sum().backward()
    before = model.weight.detach().clone()
    optimizer.step()  # the fused kernel would refuse here
    assert not torch.equal(model.weight.detach(), before)


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
