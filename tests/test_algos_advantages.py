"""Advantages against numbers worked out by hand."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackrl.algos import expand_to_tokens, gae, group_advantages, rloo_advantages


def test_gae_by_hand_with_different_lengths():
    # row 0: 3 valid tokens, row 1: 2 valid tokens then padding
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [1.0, 0.5, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # row 0: d2 = 1 - 0.3 = 0.7; d1 = 0 + 0.9*0.3 - 0.4 = -0.13; d0 = 0 + 0.9*0.4 - 0.5 = -0.14
    #        A2 = 0.7; A1 = -0.13 + 0.45*0.7 = 0.185; A0 = -0.14 + 0.45*0.185 = -0.05675
    # row 1: the value after the last valid token is 0 (padding's 7.0 and 9.0 are ignored)
    #        d1 = 2 - 0.5 = 1.5; d0 = 0 + 0.9*0.5 - 1 = -0.55; A1 = 1.5; A0 = -0.55 + 0.45*1.5 = 0.125
    assert torch.allclose(adv, torch.tensor([[-0.05675, 0.185, 0.7], [0.125, 1.5, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.44325, 0.585, 1.0], [1.125, 2.0, 0.0]]), atol=1e-6)


def test_gae_lambda_one_gamma_one_is_return_minus_value():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[6.0, 5.0, 3.0]]))  # Monte Carlo returns
    assert torch.allclose(adv, torch.tensor([[5.5, 4.5, 2.5]]))


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    # group 0: mean 0.5, sample std sqrt(1/3) = 0.57735 -> +-0.866025
    a = group_advantages(r, 4, scale="group", eps=0.0)
    assert torch.allclose(a[:4], torch.tensor([0.866025, -0.866025, -0.866025, 0.866025]), atol=1e-5)
    assert torch.equal(a[4:], torch.zeros(4))  # all equal -> exactly 0, not NaN
    assert torch.allclose(group_advantages(r, 4, scale="none"), torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))
    # batch std of all 8: mean 1.25; deviations^2 sum = 0.0625+1.5625*2+0.0625+0.5625*4 = 5.5; /7 -> std 0.886405
    b = group_advantages(r, 4, scale="batch", eps=0.0)
    assert torch.allclose(b[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / 0.886405, atol=1e-5)


def test_group_advantages_all_equal_everywhere_is_zero_not_nan():
    r = torch.full((6,), 3.0)
    for scale in ("group", "batch", "none"):
        out = group_advantages(r, 3, scale=scale)
        assert torch.equal(out, torch.zeros(6))


def test_group_advantages_rejects_bad_shapes():
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(4), 2, scale="median")


def test_rloo_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 3.0])
    # group of 4: r0 - (0+0+3)/3 = 0; r1 - (1+0+3)/3 = -4/3; r3 - (1+0+0)/3 = 8/3
    assert torch.allclose(rloo_advantages(r, 4), torch.tensor([0.0, -4 / 3, -4 / 3, 8 / 3]))
    with pytest.raises(ValueError):
        rloo_advantages(r, 1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=8), st.integers(2, 4))
def test_group_advantages_sum_to_zero_per_group(values, g):
    n = (len(values) // g) * g
    if n == 0:
        return
    r = torch.tensor(values[:n], dtype=torch.float64)
    for scale in ("group", "none"):
        a = group_advantages(r, g, scale=scale).view(-1, g)
        assert torch.isfinite(a).all()
        assert torch.allclose(a.sum(-1), torch.zeros(n // g, dtype=torch.float64), atol=1e-6)
    # RLOO is a G/(G-1) rescaling of the unscaled group advantage
    assert torch.allclose(rloo_advantages(r, g), group_advantages(r, g, scale="none") * g / (g - 1), atol=1e-9)


def test_expand_to_tokens():
    out = expand_to_tokens(torch.tensor([2.0, -1.0]), torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    assert torch.equal(out, torch.tensor([[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]]))


def _gae_reference(rewards, values, gamma, lam):
    """Independent GAE: the explicit sum A_t = sum_l (gamma lam)^l delta_{t+l} (Schulman et al.
    2016, eq. 16) over one unpadded episode, in plain Python floats."""
    n = len(rewards)
    v = list(values) + [0.0]  # the value after the last token is 0
    deltas = [rewards[t] + gamma * v[t + 1] - v[t] for t in range(n)]
    return [sum((gamma * lam) ** l * deltas[t + l] for l in range(n - t)) for t in range(n)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=4),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.integers(0, 10_000),
)
def test_gae_matches_the_explicit_sum_on_each_episode(lengths, gamma, lam, seed):
    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(max(lengths), 1)
    rewards = torch.randn(b, t, generator=g, dtype=torch.float64)
    values = torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]).to(torch.float64)
    adv, ret = gae(rewards, values, mask, gamma, lam)
    for i, n in enumerate(lengths):
        expected = _gae_reference(rewards[i, :n].tolist(), values[i, :n].tolist(), gamma, lam)
        assert torch.allclose(adv[i, :n], torch.tensor(expected, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(ret[i, :n], adv[i, :n] + values[i, :n], atol=1e-12)
        assert torch.equal(adv[i, n:], torch.zeros(t - n, dtype=torch.float64))
        assert torch.equal(ret[i, n:], torch.zeros(t - n, dtype=torch.float64))


def test_gae_accepts_bool_mask_and_values_that_require_grad():
    values = torch.tensor([[0.5, 0.5]], requires_grad=True)
    adv, ret = gae(torch.tensor([[0.0, 1.0]]), values, torch.tensor([[True, False]]), gamma=1.0, lam=1.0)
    # one valid token: its episode ends at once, A0 = r0 - V0 = -0.5 (the 1.0 on padding is ignored)
    assert torch.allclose(adv, torch.tensor([[-0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[0.0, 0.0]]))
    assert not adv.requires_grad  # targets, not part of the graph


def test_an_all_equal_group_whose_mean_rounds_is_still_exactly_zero():
    # in float32 the mean of seven 0.1s is 0.1 + 7.45e-9 and the sample std 8.05e-9: without the
    # exact check (r - mean) / std would be -0.93 on every member of a signal-free group
    r = torch.full((7,), 0.1)
    for scale in ("group", "batch", "none"):
        for eps in (0.0, 1e-6):
            assert torch.equal(group_advantages(r, 7, scale=scale, eps=eps), torch.zeros(7))


@settings(max_examples=50, deadline=None)
# a spread of at least 1e-3: with gaps near 1e-218 the variance underflows to 0 and the group
# is (correctly) treated as signal-free
@given(st.lists(st.floats(-100, 100), min_size=4, max_size=4).filter(lambda v: max(v) - min(v) > 1e-3))
def test_group_scaled_advantages_have_unit_sample_std(values):
    a = group_advantages(torch.tensor(values, dtype=torch.float64), 4, scale="group", eps=0.0)
    assert a.std().item() == pytest.approx(1.0, abs=1e-9)


def test_integer_rewards_and_float64_values_keep_sensible_dtypes():
    assert torch.allclose(group_advantages(torch.tensor([1, 0, 0, 1]), 2, scale="none"), torch.tensor([0.5, -0.5, -0.5, 0.5]))
    assert torch.allclose(rloo_advantages(torch.tensor([1, 0]), 2), torch.tensor([1.0, -1.0]))
    out = expand_to_tokens(torch.tensor([0.1], dtype=torch.float64), torch.ones(1, 2))
    assert out.dtype == torch.float64
    assert torch.equal(expand_to_tokens(torch.tensor([3.0]), torch.tensor([[True, False]])), torch.tensor([[3.0, 0.0]]))
