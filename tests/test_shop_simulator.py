"""Simulated shoppers: the click model's numbers, reproducibility, and sampled vs closed form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackrl.tasks.shop.simulator import ShopperConfig, ShopperSimulator

UTILS = [0.95, 0.7, 0.4, 0.0, 0.85]
PRICES = [1000.0, 500.0, 200.0, 20.0, 800.0]


def test_default_examination_and_click_curve():
    sim = ShopperSimulator()
    assert sim.examination(3) == pytest.approx([1.0, 2 ** -0.8, 3 ** -0.8])
    assert sim.click_probability(np.array([0.6]))[0] == pytest.approx(0.5)
    assert sim.click_probability(np.array([0.0]))[0] == pytest.approx(1 / (1 + np.exp(6.0)))
    listed = ShopperSimulator(ShopperConfig(examination=[1.0, 0.5]))
    assert listed.examination(4) == pytest.approx([1.0, 0.5, 0.5, 0.5])


def test_same_seed_same_shoppers():
    sim = ShopperSimulator()
    a = sim.simulate(UTILS, PRICES, 50, np.random.default_rng(7))
    b = sim.simulate(UTILS, PRICES, 50, np.random.default_rng(7))
    assert np.array_equal(a.clicks, b.clicks) and np.array_equal(a.purchases, b.purchases)
    assert np.array_equal(a.revenue, b.revenue)


@pytest.mark.parametrize("config", [
    ShopperConfig(),
    ShopperConfig(model="cascade"),
    ShopperConfig(bot_rate=0.2, misclick_prob=0.1),
    ShopperConfig(model="cascade", bot_rate=0.1, misclick_prob=0.05, cascade_patience=0.6),
])
def test_sampled_means_match_closed_form(config):
    sim = ShopperSimulator(config)
    n = 40_000
    ev = sim.simulate(UTILS, PRICES, n, np.random.default_rng(0))
    exp = sim.expected(UTILS, PRICES)
    for sampled, expected in ((ev.clicks, exp.clicks), (ev.carts, exp.carts), (ev.purchases, exp.purchases)):
        # 4.5 standard errors of a Bernoulli mean with n draws
        tol = 4.5 * np.sqrt(np.maximum(expected * (1 - expected), 1e-4) / n)
        assert np.all(np.abs(sampled.mean(axis=0) - expected) <= tol)
    assert ev.revenue.mean() == pytest.approx(exp.revenue, rel=0.05)


def test_events_are_nested_and_bots_never_buy():
    sim = ShopperSimulator(ShopperConfig(bot_rate=0.5, misclick_prob=0.2))
    ev = sim.simulate(UTILS, PRICES, 5000, np.random.default_rng(1))
    assert not np.any(ev.carts & ~ev.clicks)
    assert not np.any(ev.purchases & ~ev.carts)
    # A zero-utility item is clicked by bots and mis-clicks only, and never carted.
    assert ev.clicks[:, 3].mean() > 0.1 and not ev.carts[:, 3].any()


def test_cascade_stops_after_a_satisfying_click():
    # Utility 1 at the top: clicked with p = sigmoid(4) and then always satisfied.
    sim = ShopperSimulator(ShopperConfig(model="cascade", cascade_patience=1.0))
    ev = sim.simulate([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], 20_000, np.random.default_rng(2))
    p = 1 / (1 + np.exp(-4.0))
    assert not np.any(ev.clicks.sum(axis=1) > 1)
    assert ev.clicks[:, 1].mean() == pytest.approx((1 - p) * p, abs=0.01)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_expected_engagement_never_falls_when_a_utility_rises(utils):
    # Position model: raising any item's utility raises expected clicks, carts and purchases.
    sim = ShopperSimulator()
    base = sim.expected(utils, [1.0] * len(utils))
    better = sim.expected([min(1.0, u + 0.1) for u in utils], [1.0] * len(utils))
    assert better.clicks.sum() >= base.clicks.sum() - 1e-12
    assert better.purchases.sum() >= base.purchases.sum() - 1e-12
