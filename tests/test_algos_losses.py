"""Policy, value, KL and preference losses against numbers worked out by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackrl.algos import (
    aggregate, bradley_terry_loss, clipped_surrogate_loss, clipped_value_loss, dpo_loss, entropy_from_logits,
    kl_divergence, logprobs_from_logits, policy_gradient_loss,
)

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_aggregations_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 99.0, 99.0]])
    # seq_mean: (mean(1,2,3) + mean(10)) / 2 = (2 + 10) / 2 = 6
    assert aggregate(x, MASK, "seq_mean").item() == pytest.approx(6.0)
    # token_mean: (1+2+3+10) / 4 = 4
    assert aggregate(x, MASK, "token_mean").item() == pytest.approx(4.0)
    with pytest.raises(ValueError):
        aggregate(x, MASK, "sum")


def test_clipped_surrogate_by_hand():
    old = torch.zeros(2, 3)
    # ratios: row 0 = [1.5, 0.5, 1.0], row 1 = [0.7, -, -]
    new = torch.log(torch.tensor([[1.5, 0.5, 1.0], [0.7, 1.0, 1.0]]))
    adv = torch.tensor([[1.0, 1.0, -2.0], [-1.0, 0.0, 0.0]])
    loss, stats = clipped_surrogate_loss(new, old, adv, MASK, eps_low=0.2, eps_high=0.2, aggregation="token_mean")
    # token terms min(r A, clip(r) A): 1.5*1 vs 1.2*1 -> 1.2; 0.5*1 vs 0.8*1 -> 0.5;
    # 1.0*-2 -> -2; 0.7*-1 = -0.7 vs 0.8*-1 = -0.8 -> -0.8. loss = -(1.2+0.5-2-0.8)/4 = 0.275
    assert loss.item() == pytest.approx(0.275, abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(0.5)  # tokens 0 and 3 took the clipped term
    seq, _ = clipped_surrogate_loss(new, old, adv, MASK, aggregation="seq_mean")
    # row 0: -(1.2+0.5-2)/3 = 0.1; row 1: 0.8 -> mean 0.45
    assert seq.item() == pytest.approx(0.45, abs=1e-6)
    # asymmetric clip-higher: eps_high 0.6 lets 1.5 through
    hi, _ = clipped_surrogate_loss(new, old, adv, MASK, eps_low=0.2, eps_high=0.6, aggregation="token_mean")
    assert hi.item() == pytest.approx(-(1.5 + 0.5 - 2 - 0.8) / 4, abs=1e-6)


@pytest.mark.parametrize("aggregation", ["seq_mean", "token_mean"])
def test_clipped_gradient_equals_policy_gradient_at_ratio_one(aggregation):
    torch.manual_seed(0)
    base = torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.float32)
    adv = torch.randn(3, 5)
    a = base.clone().requires_grad_(True)
    loss, _ = clipped_surrogate_loss(a, base.clone(), adv, mask, aggregation=aggregation)
    loss.backward()
    b = base.clone().requires_grad_(True)
    policy_gradient_loss(b, adv, mask, aggregation=aggregation).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)
    assert a.grad.abs().sum() > 0


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.0, 0.0]])
    old = torch.tensor([[0.5, 0.0, 0.0]])
    returns = torch.tensor([[2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0, 0.0]])
    # unclipped (1-2)^2 = 1; clipped value 0.5+0.2 = 0.7 -> (0.7-2)^2 = 1.69; max -> 0.5*1.69
    assert clipped_value_loss(values, old, returns, mask, clip=0.2).item() == pytest.approx(0.845)
    # moving toward the return within the clip: value 0.6 -> both terms (0.6-2)^2 = 1.96
    assert clipped_value_loss(values - 0.4, old, returns, mask, clip=0.2).item() == pytest.approx(0.98)


def test_kl_estimators_by_hand():
    lp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    # log r = log(0.25/0.5) = -log 2
    assert kl_divergence(lp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_divergence(lp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert kl_divergence(lp, ref, "k3").item() == pytest.approx(0.5 - 1 + math.log(2))
    with pytest.raises(ValueError):
        kl_divergence(lp, ref, "k4")


def test_kl_estimators_are_unbiased_for_the_true_kl():
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.2, 0.5, 0.3])
    true_kl = float((p * (p / q).log()).sum())
    lp, lq = p.log(), q.log()
    # exact expectation under p of each estimator
    for est in ("k1", "k3"):
        expectation = float((p * kl_divergence(lp, lq, est)).sum())
        assert expectation == pytest.approx(true_kl, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.floats(-20, 0), st.floats(-20, 0))
def test_k3_is_never_negative(a, b):
    assert kl_divergence(torch.tensor([a]), torch.tensor([b]), "k3").item() >= -1e-7


def test_logprobs_and_entropy_from_logits():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    assert logprobs_from_logits(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.25))
    # H = -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.5 ln 2
    assert entropy_from_logits(logits).item() == pytest.approx(1.5 * math.log(2))


def test_bradley_terry_by_hand():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log sigmoid(2) = log(1+e^-2) = 0.126928; -log sigmoid(0) = log 2
    expected = (math.log1p(math.exp(-2)) + math.log(2)) / 2
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, abs=1e-6)
    # a margin of 1 on the first pair: log(1+e^-1)
    assert bradley_terry_loss(rc[:1], rr[:1], margin=1.0).item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)
    # centering adds coef * mean((rc+rr)^2) = 0.1 * (4 + 0) / 2 = 0.2
    assert bradley_terry_loss(rc, rr, center_coef=0.1).item() == pytest.approx(expected + 0.2, abs=1e-6)


def test_dpo_and_ipo_by_hand():
    pc, pr = torch.tensor([-1.0]), torch.tensor([-3.0])
    rc, rr = torch.tensor([-2.0]), torch.tensor([-2.0])
    # h = (-1+2) - (-3+2) = 2; beta 0.5 -> -log sigmoid(1) = log(1+e^-1)
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)
    assert stats["reward_accuracy"] == 1.0 and stats["reward_margin"] == pytest.approx(1.0)
    assert stats["chosen_reward"] == pytest.approx(0.5) and stats["rejected_reward"] == pytest.approx(-0.5)
    # IPO: (h - 1/(2 beta))^2 = (2 - 1)^2 = 1
    ipo, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, variant="ipo")
    assert ipo.item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        dpo_loss(pc, pr, rc, rr, variant="kto")
