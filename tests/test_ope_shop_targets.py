"""Shop target policies for OPE: each reproduces its ranker, PL list probabilities match the
logger's recorded propensities, and a checkpoint is a deterministic constrained ranker."""

from __future__ import annotations

import numpy as np
import pytest

from feedbackrl.store.evaluation import LoggedRankings, OPEConfig, evaluate_policy
from feedbackrl.store.schema import Interaction
from feedbackrl.tasks.shop import BM25Ranker, OracleRanker, PlackettLuceLogger, TrafficConfig, load_shop_world, simulate_traffic
from feedbackrl.tasks.shop.session_log import session_interactions
from feedbackrl.tasks.shop_target_policies import interaction_day, make_target_policy, shop_target

K = 5


@pytest.fixture(scope="module")
def world():
    return load_shop_world()


@pytest.fixture(scope="module")
def bm25(world):
    return BM25Ranker(world)


@pytest.fixture(scope="module")
def logged(world, bm25):
    """40 sessions a day on days 2-3 (the Fold6 launches on day 3) from the logging policy."""
    logger = PlackettLuceLogger(world, 0.5, marginal_samples=200, bm25=bm25)
    sessions = simulate_traffic(logger, world, TrafficConfig(days=2, start_day=2, sessions_per_day=40, seed=4))
    return sessions, LoggedRankings.from_interactions(session_interactions(sessions))


def context(query, segment, day):
    return Interaction("x", [], [], query=query, segment=segment, user_features={"day": day})


def test_day_comes_from_user_features(logged):
    sessions, rankings = logged
    assert [interaction_day(it) for it in rankings.interactions] == [s.day for s in sessions]


def test_deterministic_targets_reproduce_their_rankers(world, bm25):
    for day in (0, 5):
        it = context("best phone for gaming", "mobile", day)
        target = shop_target("bm25", world, bm25=bm25)
        expected = bm25.rank(it.query, "mobile", day, K).skus
        marg = target.position_marginals(it, K)
        assert [max(marg, key=lambda s: marg[s][k]) for k in range(K)] == expected
        assert all(sorted(p.tolist()) == [0.0] * (K - 1) + [1.0] for p in marg.values())
        assert target.list_probability(Interaction("x", expected, [False] * K, query=it.query, segment="mobile",
                                                   user_features={"day": day})) == 1.0
        oracle = shop_target("oracle", world)
        assert oracle.ranking(it, K) == OracleRanker(world).rank(it.query, "mobile", day, K).skus


def test_pl_target_agrees_with_the_logger(world, bm25, logged):
    sessions, rankings = logged
    target = shop_target("pl-bm25:0.5", world, bm25=bm25, num_samples=4000)
    for s, it in list(zip(sessions, rankings.interactions))[:30]:
        # Exact list probability = the product of the logger's recorded step probabilities.
        assert target.list_probability(it) == pytest.approx(s.propensity, rel=1e-9)
        marg = target.position_marginals(it, K)
        assert sum(marg.values()) == pytest.approx(np.ones(K))
    # Candidates are the day's: the Fold6 (launch day 3) only from day 3.
    fold6 = {p.sku for p in world.catalog.products if p.launch_day == 3}
    assert not fold6 & set(target.position_marginals(context("foldable phone", "mobile", 2), K))
    assert fold6 <= set(target.position_marginals(context("foldable phone", "mobile", 3), K))


def test_random_is_uniform_over_the_days_candidates(world):
    target = shop_target("random", world, num_samples=20_000, seed=1)
    marg = target.position_marginals(context("gaming phone", "mobile", 0), K)
    n = len(world.candidates("mobile", 0))
    assert len(marg) == n
    assert np.stack(list(marg.values())) == pytest.approx(np.full((n, K), 1 / n), abs=0.006)


def test_non_shop_logs_fall_back_to_logged_candidates(world):
    rows = [Interaction(f"i{j}", ["a", "b"], [j % 2 == 0, False], query="shoes", position_propensities=[0.5, 0.5])
            for j in range(4)]
    rankings = LoggedRankings.from_interactions(rows)
    assert make_target_policy("popularity", rankings).ranking(rows[0], 2) == ["a", "b"]
    with pytest.raises(ValueError, match="not a phrasing"):
        make_target_policy("pl-bm25:0.5", rankings)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, world, bm25):
    """A tiny untrained policy whose tokenizer holds every SKU as one token."""
    from feedbackrl.policy.tiny import TinyModelConfig, build_tiny_model
    from feedbackrl.tasks.shop.text_format import render_completion, render_prompt

    corpus = [p.title for p in world.catalog.products[:40]]
    corpus += [render_prompt(q, it.segment) + render_completion(bm25.rank(q, it.segment, 0, K).skus)
               for it in world.intents[:10] for q in it.phrasings]
    return build_tiny_model(tmp_path_factory.mktemp("ckpt"), corpus, extra_tokens=world.catalog.skus,
                            config=TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))


def test_checkpoint_is_a_deterministic_constrained_ranker(world, logged, checkpoint):
    _, rankings = logged
    target = make_target_policy(str(checkpoint), rankings)
    assert target.name == f"checkpoint:{checkpoint.name}"
    for it in rankings.interactions[:20]:
        own = target.ranking(it, K)
        day = interaction_day(it)
        allowed = {p.sku for p in world.candidates(it.segment, day)}
        # The constraint: k distinct SKUs of the query's segment available that day.
        assert len(own) == K and len(set(own)) == K and set(own) <= allowed
        mine = Interaction("x", own, [False] * K, query=it.query, segment=it.segment, user_features={"day": day})
        assert target.list_probability(mine) == 1.0
        assert target.list_probability(Interaction("x", own[::-1], [False] * K, query=it.query, segment=it.segment,
                                                   user_features={"day": day})) == 0.0
    report = evaluate_policy(rankings, target, OPEConfig(estimators=("ips", "snips", "dr"), bootstrap_resamples=0))
    assert all(np.isfinite(r.estimate) for r in report.estimates.values())
