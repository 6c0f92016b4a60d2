"""The click model behind DM/DR recovers a position-based model it did not generate."""

from __future__ import annotations

import numpy as np
import pytest

from feedbackrl.store.click_model import PositionBasedClickModel


def test_recovers_examination_and_attractiveness():
    rng = np.random.default_rng(0)
    examination = np.array([1.0, 0.6, 0.3])
    attractiveness = {"a": 0.5, "b": 0.2, "c": 0.1, "d": 0.05}
    items = [list(rng.permutation(list(attractiveness))[:3]) for _ in range(20_000)]
    clicks = np.array([[rng.random() < examination[k] * attractiveness[s] for k, s in enumerate(r)] for r in items])
    model = PositionBasedClickModel(prior_strength=1.0).fit(["q"] * len(items), items, clicks)
    assert model.examination == pytest.approx(examination, rel=0.06)
    for sku, a in attractiveness.items():
        assert model.attractiveness("q", sku) == pytest.approx(a, rel=0.1)
    # An unseen query falls back to the item's pooled attractiveness; an unseen item to the global rate.
    assert model.attractiveness("other", "a") == pytest.approx(model.item_attractiveness["a"])
    assert model.click_probability("q", "zzz", 0) == pytest.approx(model.global_attractiveness)
    assert model.click_probability("q", "a", 7) == 0.0


def test_smoothing_pulls_rare_pairs_to_item_rate():
    # One showing, one click: with prior strength 10 the estimate is (1 + 10*a0) / (1 + 10), not 1.
    items = [["a"], ["a"]] + [["b"]] * 98
    clicks = np.array([[1.0], [0.0]] + [[0.0]] * 98)
    queries = ["rare", "common"] + ["common"] * 98
    model = PositionBasedClickModel(prior_strength=10.0).fit(queries, items, clicks)
    a0 = model.item_attractiveness["a"]
    assert model.attractiveness("rare", "a") == pytest.approx((1 + 10 * a0) / 11)
