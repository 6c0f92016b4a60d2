"""The OPE runner: estimates on a hand-worked log, agreement with truth on a synthetic PBM, warnings."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from feedbackrl.store.click_model import PositionBasedClickModel
from feedbackrl.store.evaluation import LoggedRankings, OPEConfig, evaluate_policy
from feedbackrl.store.schema import Interaction


class FixedTarget:
    """A context-free target given by item -> [K] marginals and exact list probabilities."""

    def __init__(self, marginals: dict[str, list[float]], lists: dict[tuple[str, ...], float], name="fixed"):
        self.name = name
        self.marginals = {item: np.array(p, dtype=float) for item, p in marginals.items()}
        self.lists = lists

    def position_marginals(self, interaction, k):
        return self.marginals

    def list_probability(self, interaction):
        return self.lists.get(tuple(interaction.items), 0.0)

    def context_key(self, interaction):
        return None


def hand_log() -> LoggedRankings:
    rows = [  # items, clicks, position marginals, whole-list propensity
        (["a", "b"], [1, 0], [0.5, 0.5], 0.25),
        (["b", "a"], [0, 1], [0.5, 0.5], 0.25),
        (["a", "c"], [0, 1], [0.5, 0.25], 0.125),
        (["c", "b"], [1, 1], [0.25, 0.25], 0.0625),
    ]
    return LoggedRankings.from_interactions(
        Interaction(f"i{n}", items, [bool(c) for c in clicks], query="q", position_propensities=props,
                    list_propensity=lp)
        for n, (items, clicks, props, lp) in enumerate(rows)
    )


AB_FIRST = FixedTarget({"a": [1, 0], "b": [0, 1]}, {("a", "b"): 1.0})


def test_position_unit_by_hand():
    # Weights target/logging per (impression, position): [2,2], [0,0], [2,0], [0,4];
    # weight*click: [2,0], [0,0], [0,0], [0,4] -> sum 6 over 8 rounds.
    report = evaluate_policy(hand_log(), AB_FIRST, OPEConfig(bootstrap_resamples=0))
    est = report.estimates
    assert est["ips"].estimate == pytest.approx(6 / 8)
    assert est["snips"].estimate == pytest.approx(6 / 10)  # sum of weights is 10
    assert est["pbips"].estimate == pytest.approx((2 + 0 + 0 + 4) / 4 / 2)  # clicks per list / K
    assert est["ips"].ess == pytest.approx(10**2 / (4 + 4 + 4 + 16))
    assert est["dm"].ess is None and est["ips"].ci_low is None
    assert report.meta["rounds"] == 8 and report.meta["logged_ctr"] == pytest.approx(5 / 8)


def test_list_unit_by_hand():
    # Only impression 0 shows [a, b]: weight 1/0.25 = 4, reward = 1 click / 2 positions.
    report = evaluate_policy(hand_log(), AB_FIRST, OPEConfig(unit="list", bootstrap_resamples=0))
    assert report.estimates["ips"].estimate == pytest.approx(4 * 0.5 / 4)
    assert report.estimates["snips"].estimate == pytest.approx(0.5)
    assert report.estimates["ips"].ess == pytest.approx(1.0)


def test_dr_is_dm_plus_weighted_residual():
    logs = hand_log()
    model = PositionBasedClickModel().fit(logs.query_keys, [it.items for it in logs.interactions], logs.clicks)
    w = np.array([[2, 2], [0, 0], [2, 0], [0, 4]], dtype=float)
    pred_logged = np.array([[model.click_probability("q", s, k) for k, s in enumerate(it.items)] for it in logs.interactions])
    pred_target = np.array([model.click_probability("q", "a", 0), model.click_probability("q", "b", 1)])
    dm = pred_target.mean()
    dr = dm + (w * (logs.clicks - pred_logged)).mean()
    report = evaluate_policy(logs, AB_FIRST, OPEConfig(bootstrap_resamples=0))
    assert report.estimates["dm"].estimate == pytest.approx(dm)
    assert report.estimates["dr"].estimate == pytest.approx(dr)


def synthetic_pbm_log(n: int, seed: int):
    """Uniformly random top-2 lists of 5 items; clicks from a position-based model."""
    rng = np.random.default_rng(seed)
    items = ["a", "b", "c", "d", "e"]
    attractiveness = {"a": 0.6, "b": 0.45, "c": 0.3, "d": 0.15, "e": 0.05}
    examination = [1.0, 0.5]
    rows = []
    for i in range(n):
        shown = [str(s) for s in rng.choice(items, size=2, replace=False)]
        clicks = [bool(rng.random() < examination[k] * attractiveness[s]) for k, s in enumerate(shown)]
        rows.append(Interaction(f"i{i}", shown, clicks, query="q", position_propensities=[0.2, 0.2],
                                list_propensity=1 / 20))
    return LoggedRankings.from_interactions(rows), attractiveness, examination


def pl_target(scores: dict[str, float], k: int = 2) -> tuple[FixedTarget, float]:
    """Plackett-Luce over `scores`: exact marginals and list probabilities by enumeration."""
    items = list(scores)
    total = sum(scores.values())
    marginals = {s: [0.0] * k for s in items}
    lists = {}
    for perm in itertools.permutations(items, k):
        p, left = 1.0, total
        for s in perm:
            p *= scores[s] / left
            left -= scores[s]
        lists[perm] = p
        for pos, s in enumerate(perm):
            marginals[s][pos] += p
    return FixedTarget(marginals, lists, name="pl"), lists


def test_estimates_match_truth_on_synthetic_pbm():
    logs, attractiveness, examination = synthetic_pbm_log(20_000, seed=1)
    target, lists = pl_target({"a": 4.0, "b": 2.0, "c": 1.0, "d": 0.5, "e": 0.5})
    truth = sum(p * sum(examination[k] * attractiveness[s] for k, s in enumerate(perm)) / 2 for perm, p in lists.items())
    report = evaluate_policy(logs, target, OPEConfig(bootstrap_resamples=50))
    for name in ("ips", "snips", "dm", "dr", "pbips"):
        r = report.estimates[name]
        assert r.estimate == pytest.approx(truth, rel=0.05), name
    for name in ("ips", "snips", "dr"):
        assert report.estimates[name].ci_low <= truth <= report.estimates[name].ci_high, name
    assert report.warnings == []
    listwise = evaluate_policy(logs, target, OPEConfig(unit="list", estimators=("snips",), bootstrap_resamples=0))
    assert listwise.estimates["snips"].estimate == pytest.approx(truth, rel=0.1)
    json.dumps(report.to_json())  # serialisable as is


def test_warns_on_poor_support():
    logs, _, _ = synthetic_pbm_log(2000, seed=2)
    # Puts most mass on an item the logger never showed: unsupported, and weights are concentrated.
    target = FixedTarget({"z": [0.9, 0.0], "a": [0.1, 0.0], "b": [0.0, 1.0]}, {})
    report = evaluate_policy(logs, target, OPEConfig(bootstrap_resamples=0, min_ess_fraction=0.5))
    text = " ".join(report.warnings)
    assert "never show" in text and "45.0%" in text
    assert "effective sample size" in text
    assert report.meta["unsupported_target_mass"] == pytest.approx(0.45)


def test_config_rejects_unknown_estimator():
    with pytest.raises(ValueError, match="unknown estimator"):
        OPEConfig(estimators=("ips", "magic")).validate()
