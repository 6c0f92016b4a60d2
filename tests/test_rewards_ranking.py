import math
import random
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedbackrl.rewards.ranking import RankingReward, mrr, ndcg_at_k, parse_ranked_ids, precision_at_k, recall_at_k
from feedbackrl.sample import Sample


def test_ndcg_hand_case():
    relevance = {"a": 2, "b": 1, "c": 0, "z": 3}
    # DCG = (2^2-1)/log2(2) + 0/log2(3) + (2^1-1)/log2(4) = 3 + 0.5
    # IDCG = 7/log2(2) + 3/log2(3) + 1/log2(4)
    idcg = 7 + 3 / math.log2(3) + 0.5
    assert ndcg_at_k(["a", "x", "b"], relevance, 5) == pytest.approx(3.5 / idcg)
    # at k=1 only "a" counts, against the ideal "z"
    assert ndcg_at_k(["a", "x", "b"], relevance, 1) == pytest.approx(3 / 7)
    assert ndcg_at_k(["z", "a", "b"], relevance, 3) == pytest.approx(1.0)
    assert ndcg_at_k(["a"], {"a": 0}, 3) == 0.0  # nothing relevant to find


def test_mrr_precision_recall_hand_cases():
    relevance = {"b": 1, "d": 2}
    ranked = ["a", "b", "c", "d"]
    assert mrr(ranked, relevance) == 0.5
    assert mrr(ranked, relevance, k=1) == 0.0
    assert precision_at_k(ranked, relevance, 4) == 0.5
    assert precision_at_k(["b"], relevance, 4) == 0.25  # empty slots are misses
    assert recall_at_k(ranked, relevance, 2) == 0.5


def test_repeats_count_once():
    relevance = {"a": 1}
    assert precision_at_k(["a", "a"], relevance, 2) == 0.5
    assert ndcg_at_k(["a", "a"], relevance, 2) == pytest.approx(1.0)
    assert mrr(["x", "a", "a"], relevance) == 0.5


def test_bad_k_is_a_clear_error():
    with pytest.raises(ValueError, match="k must be >= 1"):
        ndcg_at_k(["a"], {"a": 1}, 0)


def _random_cases(n: int, seed: int):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        pool = [f"d{i}" for i in range(rng.randint(1, 15))]
        judged = rng.sample(pool, rng.randint(1, len(pool)))
        relevance = {d: rng.randint(0, 3) for d in judged}
        if not any(relevance.values()):
            relevance[judged[0]] = 1  # ranx skips queries with nothing relevant
        ranked = rng.sample(pool, rng.randint(1, len(pool)))
        cases.append((ranked, relevance, rng.randint(1, 12)))
    return cases


_OURS_AND_RANX = [(ndcg_at_k, "ndcg_burges"), (precision_at_k, "precision"), (recall_at_k, "recall"), (mrr, "mrr")]


def test_agrees_with_ranx():
    ranx = pytest.importorskip("ranx")
    cases = _random_cases(150, seed=7)
    qrels = ranx.Qrels({f"q{i}": {d: int(r) for d, r in rel.items()} for i, (_, rel, _) in enumerate(cases)})
    # ranx reads a ranking from scores: strictly decreasing scores keep our order
    run = ranx.Run({f"q{i}": {d: float(len(ranked) - j) for j, d in enumerate(ranked)} for i, (ranked, _, _) in enumerate(cases)})
    metrics = sorted({f"{name}@{k}" for _, name in _OURS_AND_RANX for _, _, k in cases})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's unsafe-cast notice
        ranx.evaluate(qrels, run, metrics)
    checked = 0
    for i, (ranked, rel, k) in enumerate(cases):
        for ours, name in _OURS_AND_RANX:
            expected = float(run.scores[f"{name}@{k}"][f"q{i}"])
            assert ours(ranked, rel, k) == pytest.approx(expected, abs=1e-6), (name, ranked, rel, k)
            checked += 1
    assert checked == 4 * len(cases)


@given(
    grades=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 4), min_size=1),
    order=st.permutations(list("abcdefgh")),
    k=st.integers(1, 10),
)
def test_ndcg_bounded_and_ideal_is_one(grades, order, k):
    value = ndcg_at_k(order, grades, k)
    assert 0.0 <= value <= 1.0 + 1e-12
    ideal = sorted(grades, key=lambda d: -grades[d])
    if any(grades.values()):
        assert ndcg_at_k(ideal, grades, k) == pytest.approx(1.0)


def test_parse_ranked_ids():
    assert parse_ranked_ids("1. SKU-A\n2) SKU-B, SKU_C\n- 123") == ["SKU-A", "SKU-B", "SKU_C", "123"]
    assert parse_ranked_ids("b a") == ["b", "a"]
    assert parse_ranked_ids("SKU-A > SKU-B", r"SKU-\w+") == ["SKU-A", "SKU-B"]


def test_ranking_reward_reports_invalid_and_repeated_ids():
    reward = RankingReward(metric="precision", k=3, id_pattern=r"SKU-\w+", invalid_penalty=0.1, duplicate_penalty=0.2)
    reference = {"relevance": {"SKU-A": 1, "SKU-B": 0}, "valid_ids": ["SKU-A", "SKU-B"]}
    [r] = reward([Sample("q", "SKU-A SKU-Z SKU-A SKU-B", reference=reference)])
    # top 3 = A, Z, A: one hit out of 3; Z invalid (-0.1); the second A repeated (-0.2)
    assert r.details["value"] == pytest.approx(1 / 3)
    assert r.details["invalid"] == ["SKU-Z"]
    assert r.details["duplicates"] == ["SKU-A"]
    assert r.score == pytest.approx(1 / 3 - 0.1 - 0.2)


def test_ranking_reward_plain_relevance_dict_and_errors():
    [r] = RankingReward(k=2)([Sample("q", "b a", reference={"a": 1, "b": 0})])
    assert r.score == pytest.approx(1 / math.log2(3))  # gain 1 at rank 2 over the ideal gain 1 at rank 1
    [bad] = RankingReward()([Sample("q", "a", reference=None)])
    assert bad.error == "missing relevance judgements"
    with pytest.raises(ValueError, match="unknown ranking metric"):
        RankingReward(metric="map")
