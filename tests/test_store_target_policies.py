"""Top-k and Plackett-Luce targets: list probabilities by hand, sampled marginals vs enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from feedbackrl.store.schema import Interaction
from feedbackrl.store.target_policies import PlackettLuceTarget, TopKTarget

SCORES = {"a": math.log(4.0), "b": math.log(2.0), "c": 0.0, "d": 0.0}  # weights 4, 2, 1, 1


def shown(*items):
    return Interaction("i", list(items), [False] * len(items), query="q")


def test_top_k_is_one_hot():
    target = TopKTarget("top", lambda it: SCORES)
    assert target.ranking(shown("x", "y"), 2) == ["a", "b"]
    marg = target.position_marginals(shown("x", "y"), 2)
    assert marg["a"].tolist() == [1.0, 0.0] and marg["b"].tolist() == [0.0, 1.0]
    assert target.list_probability(shown("a", "b")) == 1.0
    assert target.list_probability(shown("b", "a")) == 0.0
    # Ties (c, d) break by SKU.
    assert target.ranking(shown("x", "y", "z", "w"), 4) == ["a", "b", "c", "d"]


def test_pl_list_probability_by_hand():
    target = PlackettLuceTarget("pl", lambda it: SCORES)
    # P(a then c) = 4/8 * 1/4.
    assert target.list_probability(shown("a", "c")) == pytest.approx(0.5 * 0.25)
    # Temperature 2 halves log-weights: weights 2, sqrt2, 1, 1 -> P(b, a) = sqrt2/(4+sqrt2) * 2/(4).
    hot = PlackettLuceTarget("pl", lambda it: SCORES, temperature=2.0)
    s2 = math.sqrt(2)
    assert hot.list_probability(shown("b", "a")) == pytest.approx(s2 / (4 + s2) * 2 / 4)
    assert target.list_probability(shown("a", "zzz")) == 0.0
    assert target.list_probability(shown("a", "a")) == 0.0


def test_pl_marginals_match_enumeration():
    weights = {s: math.exp(v) for s, v in SCORES.items()}
    exact = {s: np.zeros(2) for s in weights}
    for perm in itertools.permutations(weights, 2):
        p = weights[perm[0]] / 8 * weights[perm[1]] / (8 - weights[perm[0]])
        for pos, s in enumerate(perm):
            exact[s][pos] += p
    target = PlackettLuceTarget("pl", lambda it: SCORES, num_samples=200_000, seed=3)
    sampled = target.position_marginals(shown("x", "y"), 2)
    for s in weights:
        assert sampled[s] == pytest.approx(exact[s], abs=0.005)
    # Each position's marginals sum to 1.
    assert sum(sampled.values()) == pytest.approx(np.ones(2))


def test_pl_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        PlackettLuceTarget("pl", lambda it: SCORES, temperature=0.0)
