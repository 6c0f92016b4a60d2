"""Weighted and off-policy losses and OPE estimators against hand-worked logs."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackrl.algos import (
    advantage_weights, bootstrap_ci, direct_method_estimate, doubly_robust_estimate, effective_sample_size,
    importance_weights, ips_estimate, offpolicy_pg_loss, position_based_ips, snips_estimate, weighted_nll_loss,
)

# four logged rounds: reward, logging prob of the logged action, target prob of it
R = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
MU = torch.tensor([0.5, 0.5, 0.25, 0.8], dtype=torch.float64)
PI = torch.tensor([1.0, 0.0, 0.5, 0.4], dtype=torch.float64)


def test_ips_snips_ess_by_hand():
    # w = [2, 0, 2, 0.5]; IPS = (2*1 + 0 + 2*1 + 0) / 4 = 1.0
    assert ips_estimate(R, PI, MU) == pytest.approx(1.0)
    # SNIPS = 4 / (2+0+2+0.5) = 0.888...
    assert snips_estimate(R, PI, MU) == pytest.approx(4 / 4.5)
    # clipped at 1.5: w = [1.5, 0, 1.5, 0.5] -> IPS 3/4
    assert ips_estimate(R, PI, MU, clip_max=1.5) == pytest.approx(0.75)
    # ESS = 4.5^2 / (4 + 0 + 4 + 0.25) = 20.25 / 8.25
    assert effective_sample_size(PI / MU) == pytest.approx(20.25 / 8.25)


def test_dm_and_dr_by_hand():
    q_logged = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    q_target = torch.tensor([0.6, 0.6, 0.6, 0.6], dtype=torch.float64)
    assert direct_method_estimate(q_target) == pytest.approx(0.6)
    # DR = mean(0.6 + w (r - 0.5)) = 0.6 + (2*0.5 + 0 + 2*0.5 + 0.5*-0.5)/4 = 0.6 + 0.4375
    assert doubly_robust_estimate(R, PI, MU, q_logged, q_target) == pytest.approx(1.0375)


def test_on_policy_ips_is_the_plain_mean():
    assert ips_estimate(R, MU, MU) == pytest.approx(float(R.mean()))
    assert snips_estimate(R, MU, MU) == pytest.approx(float(R.mean()))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_dr_with_a_perfect_reward_model_is_exact(seed):
    g = torch.Generator().manual_seed(seed)
    n, actions = 50, 3
    true_reward = torch.rand(actions, generator=g, dtype=torch.float64)  # deterministic reward per action
    mu = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    pi = torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64)
    logged = torch.multinomial(mu, n, replacement=True, generator=g)
    r = true_reward[logged]
    value = float((pi * true_reward).sum())
    est = doubly_robust_estimate(r, pi[logged], mu[logged], true_reward[logged], torch.full((n,), value, dtype=torch.float64))
    assert est == pytest.approx(value, abs=1e-9)


def test_position_based_ips_by_hand():
    clicks = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logging = torch.tensor([[0.5, 0.5], [0.25, 0.5]])
    target = torch.tensor([[1.0, 0.0], [0.5, 0.25]])
    # round 0: 2*1 + 0 = 2; round 1: 0 + 0.5*1 = 0.5; mean = 1.25 clicks per impression
    assert position_based_ips(clicks, target, logging) == pytest.approx(1.25)


def test_bootstrap_ci_brackets_the_mean():
    x = torch.arange(100, dtype=torch.float64)
    low, high = bootstrap_ci(lambda idx: float(x[idx].mean()), 100, num_resamples=300, seed=1)
    assert low < 49.5 < high
    assert high - low < 25  # the std error of the mean here is about 2.9
    assert bootstrap_ci(lambda idx: float(x[idx].mean()), 100, seed=1) == bootstrap_ci(lambda idx: float(x[idx].mean()), 100, seed=1)


def test_advantage_weights_and_weighted_nll():
    w = advantage_weights(torch.tensor([0.0, 1.0, 10.0]), temperature=1.0, max_weight=5.0)
    assert torch.allclose(w, torch.tensor([1.0, math.e, 5.0]))
    wb = advantage_weights(torch.tensor([0.0, math.log(3.0)]), normalise="batch")
    assert torch.allclose(wb, torch.tensor([0.5, 1.5]))
    # -mean(w * lp / len) = -(1 * -2/2 + 3 * -4/4)/2 = 2
    loss = weighted_nll_loss(torch.tensor([-2.0, -4.0]), torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0]))
    assert loss.item() == pytest.approx(2.0)


def test_importance_weights_and_offpolicy_gradient():
    target = torch.log(torch.tensor([0.2, 0.9]))
    behaviour = torch.log(torch.tensor([0.4, 0.1]))
    w = importance_weights(target, behaviour, clip_max=5.0)
    assert torch.allclose(w, torch.tensor([0.5, 5.0]))  # 0.5 and min(9, 5)
    lp = target.clone().requires_grad_(True)
    loss, stats = offpolicy_pg_loss(lp, behaviour, torch.tensor([1.0, 2.0]), clip_max=5.0, baseline=1.0)
    # -mean(w (r-b) lp): d/dlp = -w (r-b) / 2 = [-0.5*0/2, -5*1/2] = [0, -2.5]
    loss.backward()
    assert torch.allclose(lp.grad, torch.tensor([0.0, -2.5]))
    assert stats["clipped_fraction"] == 0.5 and stats["mean_weight"] == pytest.approx(2.75)
