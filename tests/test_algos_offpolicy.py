"""Weighted and off-policy losses and OPE estimators against hand-worked logs."""

import math

import pytest
import torch
from hypothesis import example, given, settings
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


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_ips_and_dr_are_unbiased_in_exact_expectation(seed):
    # Enumerate the logging distribution instead of sampling: E_mu[w r] = sum_a mu(a) (pi(a)/mu(a)) r(a)
    # must be the target's value sum_a pi(a) r(a); one-round estimates weighted by mu(a) give it.
    g = torch.Generator().manual_seed(seed)
    k = 4
    mu = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), 0)
    pi = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), 0)
    r = torch.rand(k, generator=g, dtype=torch.float64)
    wrong_model = torch.rand(k, generator=g, dtype=torch.float64)  # DR is unbiased with any model
    value = float((pi * r).sum())
    ips = sum(float(mu[a]) * ips_estimate(r[a:a + 1], pi[a:a + 1], mu[a:a + 1]) for a in range(k))
    q_target = torch.full((1,), float((pi * wrong_model).sum()), dtype=torch.float64)
    dr = sum(
        float(mu[a]) * doubly_robust_estimate(r[a:a + 1], pi[a:a + 1], mu[a:a + 1], wrong_model[a:a + 1], q_target)
        for a in range(k)
    )
    assert ips == pytest.approx(value, abs=1e-12)
    assert dr == pytest.approx(value, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.floats(0.0, 1.0), st.floats(0.01, 1.0)), min_size=1, max_size=10
    ).filter(lambda rows: sum(t for _, t, _ in rows) > 0)
)
@example(rows=[(0.5, 5e-324, 1.0)])  # a subnormal weight: w * r used to round to 0, the estimate to 0.0
def test_snips_stays_within_the_logged_rewards(rows):
    r, pi, mu = (torch.tensor(col, dtype=torch.float64) for col in zip(*rows))
    est = snips_estimate(r, pi, mu)
    assert float(r.min()) - 1e-9 <= est <= float(r.max()) + 1e-9


def test_ess_and_zero_propensity_errors():
    assert effective_sample_size(torch.full((7,), 0.3)) == pytest.approx(7.0)  # equal weights: every round counts
    assert effective_sample_size(torch.tensor([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_sample_size(torch.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="logging propensities"):
        ips_estimate(R, PI, torch.tensor([0.5, 0.0, 0.25, 0.8], dtype=torch.float64))
    with pytest.raises(ValueError):
        bootstrap_ci(lambda idx: 0.0, 0)
    with pytest.raises(ValueError):
        bootstrap_ci(lambda idx: 0.0, 5, alpha=1.0)


def test_position_based_ips_on_policy_is_clicks_per_impression():
    clicks = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    logging = torch.tensor([[0.9, 0.3, 0.2], [0.5, 0.5, 0.1]])
    # target == logging: every weight 1, so (2 + 1) clicks over 2 impressions
    assert position_based_ips(clicks, logging, logging) == pytest.approx(1.5)
    # clipping at 1.5: round 1 position 2 would weigh 0.4/0.1 = 4 -> 1.5; mean (2 + 1.5) / 2
    target = logging.clone()
    target[1, 2] = 0.4
    assert position_based_ips(clicks, target, logging, clip_max=1.5) == pytest.approx(1.75)


def test_weights_stay_finite_for_extreme_log_ratios():
    w = importance_weights(torch.tensor([1000.0, -1000.0]), torch.tensor([0.0, 0.0]), clip_max=10.0)
    assert torch.allclose(w, torch.tensor([10.0, 0.0]))
    a = torch.tensor([1e4, -1e4], requires_grad=True)
    aw = advantage_weights(a, max_weight=20.0)
    assert torch.allclose(aw, torch.tensor([20.0, 0.0])) and not aw.requires_grad
    with pytest.raises(ValueError):
        advantage_weights(a, temperature=0.0)
    with pytest.raises(ValueError):
        advantage_weights(a, normalise="softmax")


def test_offpolicy_stats_by_hand():
    lp = torch.log(torch.tensor([0.5, 0.5, 0.2]))
    mu = torch.log(torch.tensor([0.25, 0.5, 0.01]))
    # raw weights 2, 1, 20 -> clipped at 4: 2, 1, 4; mean 7/3; ESS 49 / (4 + 1 + 16) = 7/3
    _, stats = offpolicy_pg_loss(lp, mu, torch.ones(3), clip_max=4.0)
    assert stats["mean_weight"] == pytest.approx(7 / 3, rel=1e-6)
    assert stats["clipped_fraction"] == pytest.approx(1 / 3)
    assert stats["ess"] == pytest.approx(49 / 21, rel=1e-6)


def test_weighted_nll_without_lengths_and_weights_are_not_trained():
    lp = torch.tensor([-2.0, -4.0], requires_grad=True)
    w = torch.tensor([1.0, 3.0], requires_grad=True)
    # -mean(w lp) = -(-2 - 12) / 2 = 7
    loss = weighted_nll_loss(lp, w)
    assert loss.item() == pytest.approx(7.0)
    loss.backward()
    assert torch.allclose(lp.grad, torch.tensor([-0.5, -1.5])) and w.grad is None


def test_prompt_reward_to_go_advantages_by_hand():
    from feedbackrl.algos import prompt_reward_to_go_advantages

    # prompt 0: rows 0 and 1 (row 1 one token shorter); prompt 1: row 2 alone
    rewards = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 9.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    adv = prompt_reward_to_go_advantages(rewards, mask, torch.tensor([0, 0, 1]))
    # rewards to go: row 0 [1, 1, 0]; row 1 [1, 0, -] (the 9 is padding); row 2 [2, 0, 0]
    # prompt 0's means per position (zeros past row 1's end): [1, 0.5, 0]
    assert adv.tolist() == [[0.0, 0.5, 0.0], [0.0, -0.5, 0.0], [0.0, 0.0, 0.0]]


def test_token_weighted_nll_is_the_sequence_form_with_one_weight_per_row():
    from feedbackrl.algos import token_weighted_nll_loss

    lp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    w_rows = torch.tensor([2.0, 0.5])
    per_token = token_weighted_nll_loss(lp, w_rows[:, None].expand(2, 3), mask).detach()
    sequence = weighted_nll_loss(lp.detach().mul(mask).sum(-1), w_rows, mask.sum(-1))
    assert float(per_token) == pytest.approx(float(sequence))
    # by hand: -(2 * -6/3 + 0.5 * -1/2) / 2 = 2.125; a token weight moves only its own token
    assert float(per_token) == pytest.approx(2.125)
    w = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 7.0]])
    token_weighted_nll_loss(lp, w, mask).backward()
    assert lp.grad.flatten().tolist() == pytest.approx([0.0, -0.5, 0.0, 0.0, 0.0, 0.0])
