"""Baseline rankers, Plackett-Luce propensities, traffic and the metrics it yields."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from feedbackrl.tasks.shop.baselines import (
    BM25Ranker,
    OracleRanker,
    PlackettLuceLogger,
    PopularityRanker,
    RandomRanker,
    make_baseline,
    plackett_luce_marginals,
    plackett_luce_step_probabilities,
)
from feedbackrl.tasks.shop.metrics import days_to_top3, summarize, summarize_by
from feedbackrl.tasks.shop.traffic import TrafficConfig, simulate_traffic
from feedbackrl.tasks.shop.world import load_shop_world


@pytest.fixture(scope="module")
def world():
    return load_shop_world()


@pytest.fixture(scope="module")
def bm25(world):
    return BM25Ranker(world)


def test_plackett_luce_steps_by_hand():
    logits = np.log(np.array([1.0, 2.0, 3.0, 4.0]))
    steps = plackett_luce_step_probabilities(logits, np.array([3, 0, 2]))
    assert steps == pytest.approx([4 / 10, 1 / 6, 3 / 5])


def test_plackett_luce_lists_sum_to_one_and_marginals_match():
    logits = np.array([0.5, -1.0, 2.0, 0.0])
    total = 0.0
    exact = np.zeros((4, 2))  # P(item i at position j)
    for order in itertools.permutations(range(4), 2):
        p = float(np.prod(plackett_luce_step_probabilities(logits, np.array(order))))
        total += p
        for j, item in enumerate(order):
            exact[item, j] += p
    assert total == pytest.approx(1.0)
    mc = plackett_luce_marginals(logits, np.array([2, 0]), 40_000, np.random.default_rng(0))
    assert mc == pytest.approx([exact[2, 0], exact[0, 1]], abs=0.01)


def test_logger_records_propensities(world, bm25):
    logger = PlackettLuceLogger(world, temperature=0.5, marginal_samples=2000, bm25=bm25)
    ranked = logger.rank("tablet for drawing", "mobile", 0, 5, np.random.default_rng(3))
    assert len(ranked.skus) == 5 == len(set(ranked.skus))
    assert ranked.propensity == pytest.approx(np.prod(ranked.position_propensities))
    assert ranked.log_propensity == pytest.approx(np.log(ranked.propensity))
    assert all(0 < p <= 1 for p in ranked.marginal_propensities)
    # Low temperature is nearly BM25; the lexical top item is drawn first most of the time.
    top = bm25.rank("tablet for drawing", "mobile", 0, 1).skus[0]
    firsts = [logger.rank("tablet for drawing", "mobile", 0, 1, np.random.default_rng(s)).skus[0] for s in range(200)]
    assert firsts.count(top) / 200 > 0.3


def test_rankers_respect_segment_and_day(world, bm25):
    rng = np.random.default_rng(0)
    for ranker in (bm25, OracleRanker(world), RandomRanker(world), PopularityRanker(world, bm25=bm25)):
        for day in (0, 3):
            skus = ranker.rank("foldable phone", "mobile", day, 5, rng).skus
            assert len(skus) == 5 == len(set(skus))
            products = [world.catalog.by_sku[s] for s in skus]
            assert all(world.catalog.segment_of(p) == "mobile" and p.launch_day <= day for p in products)
    assert OracleRanker(world).rank("foldable phone", "mobile", 3, 2).skus == ["SM-F956-256", "SM-F956-512"]


def test_popularity_counts_clicks_and_purchases(world, bm25):
    pop = PopularityRanker(world, purchase_weight=3.0, bm25=bm25)
    s = SimpleNamespace(query="Fridge for  bachelors", skus=["RR19A241", "RR09M2001"], clicks=[True, True], purchases=[False, True])
    pop.observe_day(0, [s, s])
    assert pop.counts["fridge for bachelors"]["RR09M2001"] == 8.0
    assert pop.rank("fridge for bachelors", "appliances", 0, 2).skus == ["RR09M2001", "RR19A241"]
    assert make_baseline("pl-bm25:0.25", world).temperature == 0.25
    with pytest.raises(ValueError, match="unknown ranker"):
        make_baseline("magic", world)


def test_traffic_is_reproducible_and_oracle_leaves_room_above_bm25(world, bm25):
    cfg = TrafficConfig(days=2, sessions_per_day=400, seed=5)
    a = simulate_traffic(bm25, world, cfg)
    b = simulate_traffic(bm25, world, cfg)
    assert [(r.query, r.clicks) for r in a] == [(r.query, r.clicks) for r in b]
    oracle = summarize(simulate_traffic(OracleRanker(world), world, cfg))
    lexical = summarize(a)
    random_ = summarize(simulate_traffic(RandomRanker(world), world, cfg))
    assert oracle["ndcg@5"] == pytest.approx(1.0)
    # The benchmark's point: lexical search is far below the ceiling and well above chance.
    assert lexical["ctr"] < 0.6 * oracle["ctr"]
    assert lexical["ctr"] > 2 * random_["ctr"]
    per_segment = summarize_by(a, lambda r: r.segment)
    assert set(per_segment) == {"mobile", "tv", "appliances"}
    assert sum(m["sessions"] for m in per_segment.values()) == 800


def test_summarize_by_hand():
    s1 = SimpleNamespace(clicks=[True, False, True], carts=[True, False, False], purchases=[True, False, False],
                         revenue=100.0, ndcg5=0.5)
    s2 = SimpleNamespace(clicks=[False, False, False], carts=[False] * 3, purchases=[False] * 3, revenue=0.0, ndcg5=0.1)
    m = summarize([s1, s2])
    assert m["ctr"] == 1.0 and m["sessions_with_click"] == 0.5 and m["add_to_cart_rate"] == 0.5
    assert m["conversion"] == 0.5 and m["revenue_per_session"] == 50.0 and m["ndcg@5"] == pytest.approx(0.3)


def test_days_to_top3(world):
    def session(day, skus):
        return SimpleNamespace(day=day, intent_id="foldable_phone", skus=skus)

    fold = "SM-F956-256"
    sessions = [session(3, ["x", "y", "z"]), session(4, [fold, "y"]), session(4, ["y", "x", "z"]),
                session(5, ["y", fold])]
    out = days_to_top3(sessions, world)
    # Day 4: in the top 3 of 1 of 2 sessions (half) -> one day after the day-3 launch.
    assert out[fold]["foldable_phone"] == 1
    assert out[fold]["premium_phone"] is None


def test_text_ranker_wraps_a_generator(world, bm25):
    from feedbackrl.tasks.shop.text_ranker import TextRanker

    seen = []

    def complete(prompts):
        seen.extend(prompts)
        return ["1. SM-S918-256, nonsense SM-S918-256 SM-A546-128"]

    ranker = TextRanker(world, complete, name="fake-policy")
    ranked = ranker.rank("best phone for gaming", "mobile", 0, 5)
    assert seen == ["search: best phone for gaming [mobile] ->"]
    assert ranked.skus == ["SM-S918-256", "SM-A546-128"] and ranked.propensity is None
    assert ranker.last_parsed.unknown == ["nonsense"]
    records = simulate_traffic(ranker, world, TrafficConfig(days=1, sessions_per_day=5))
    assert all(r.policy == "fake-policy" and r.skus == ["SM-S918-256", "SM-A546-128"] for r in records)
