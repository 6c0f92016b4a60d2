"""The policy side of the shop: prompt and parser, constrained decoding, reward, ShopTask."""

from __future__ import annotations

import random

import numpy as np
import pytest

from feedbackrl.rewards.base import RewardFn, score_samples
from feedbackrl.sample import Sample
from feedbackrl.tasks.shop.reward import EngagementReward, EngagementRewardConfig, ShopQuery
from feedbackrl.tasks.shop.simulator import ShopperSimulator
from feedbackrl.tasks.shop.task import ShopTask, ShopTaskConfig
from feedbackrl.tasks.shop.text_format import parse_ranking, render_completion, render_prompt

S23U, A54, FOLD6 = "SM-S918-256", "SM-A546-128", "SM-F956-256"


@pytest.fixture(scope="module")
def task():
    return ShopTask()


@pytest.fixture(scope="module")
def tokenizer(task):
    from feedbackrl.policy.tiny import train_tokenizer

    return train_tokenizer(task.corpus(), task.extra_tokens(), vocab_size=600)


def test_prompt_and_completion_format():
    assert render_prompt("best  phone for gaming", "mobile") == "search: best phone for gaming [mobile] ->"
    assert render_completion(["A1", "B2"]) == " A1 B2"


def test_parser_is_tolerant_and_reports_mistakes(task):
    w = task.world
    text = f"1. {S23U.lower()},\n2) {A54}; #3 foo {S23U} | {FOLD6}\n- SM-X916-256 * QN65QN90D 7.RR19A241 WW70T4020"
    p = parse_ranking(text, w.catalog, w.calendar, day=0, k=5)
    assert p.items == [S23U, A54, "SM-X916-256", "QN65QN90D", "RR19A241"]
    assert p.unknown == ["foo"] and p.repeated == [S23U] and p.unavailable == [FOLD6]
    assert p.overflow == ["WW70T4020"] and p.invalid_count == 3 and not p.valid
    on_launch = parse_ranking(f" {FOLD6} {S23U}", w.catalog, w.calendar, day=3, k=5)
    assert on_launch.items == [FOLD6, S23U] and on_launch.valid
    assert not parse_ranking("  ", w.catalog, w.calendar, 0, 5).valid


def test_catalog_constraint_allows_todays_skus_once_then_eos(task, tokenizer):
    constraint = task.constraint(tokenizer)
    assert constraint.active
    first = constraint(0, [])
    fold_id = tokenizer(" " + FOLD6, add_special_tokens=False)["input_ids"][0]
    s23_id = tokenizer(" " + S23U, add_special_tokens=False)["input_ids"][0]
    assert fold_id not in first and s23_id in first  # day 0: the Fold6 is not launched
    assert len(first) == len(task.world.catalog_on(0))
    assert s23_id not in constraint(0, [s23_id])
    ids = list(first[:5])
    assert constraint(0, ids) == [tokenizer.eos_token_id]
    # Decoding the allowed ids gives back exactly the SKU list the parser expects.
    text = tokenizer.decode(ids)
    p = parse_ranking(text, task.world.catalog, task.world.calendar, 0, 5)
    assert p.valid and len(p.items) == 5
    per_row = task.constraint(tokenizer, segments=["tv"])
    tv_ids = set(per_row(0, []))
    assert s23_id not in tv_ids and len(tv_ids) == len(task.world.candidates("tv", 0))
    task.set_day(3)
    try:
        assert fold_id in task.constraint(tokenizer)(0, [])
    finally:
        task.set_day(0)


def test_constraint_turns_off_without_whole_sku_tokens(task):
    from feedbackrl.policy.tiny import train_tokenizer
    from feedbackrl.tasks.shop.constraint import CatalogConstraint

    plain = train_tokenizer(["search: phone -> SM-S918-256"], vocab_size=300)
    c = CatalogConstraint(plain, task.world.catalog, 0, 5)
    assert not c.active and c(0, []) is None


def test_engagement_reward_by_hand(task):
    w = task.world
    cfg = EngagementRewardConfig(mode="expected", invalid_penalty=0.5, purchase_weight=2.0)
    reward = EngagementReward(w, cfg)
    assert isinstance(reward, RewardFn)
    q = ShopQuery("gaming_phone", "best phone for gaming", "mobile", 0)
    good = reward.score_list(q, f" {S23U} {A54}")
    u = w.utilities(w.intent_by_id["gaming_phone"], 0)
    ev = ShopperSimulator(cfg.shoppers).expected([u[S23U], u[A54]], [1199, 449])
    assert good.score == pytest.approx(ev.clicks.sum() + ev.carts.sum() + 2 * ev.purchases.sum())
    assert good.details["rule"] == "ok" and good.details["items"] == [S23U, A54]
    bad = reward.score_list(q, f" {S23U} {S23U} nonsense {FOLD6}")
    assert bad.score == pytest.approx(reward.score_list(q, f" {S23U}").score - 1.5)
    assert bad.details["unknown"] == ["nonsense"] and bad.details["unavailable"] == [FOLD6]
    assert reward.score_list(q, "nothing here").score == pytest.approx(-1.0 - 0.5 * 2)
    gated = EngagementReward(w, EngagementRewardConfig(mode="expected", gate_invalid=True)).score_list(q, f" {S23U} x")
    assert gated.score == pytest.approx(-0.5) and gated.details["rule"] == "gated"
    # The better list earns more: the gaming phone beats the keyword trap.
    trap = reward.score_list(q, " EF-GM01 EF-GM02")
    assert good.score > trap.score + 1.0


def test_sampled_reward_is_seeded_and_unbiased(task):
    q = ShopQuery("gaming_phone", "gaming phone", "mobile", 0)
    s = [Sample("p", f" {S23U} {A54}", reference=q)]
    r1 = EngagementReward(task.world, EngagementRewardConfig(seed=3, shoppers_per_sample=4))(s)
    r2 = EngagementReward(task.world, EngagementRewardConfig(seed=3, shoppers_per_sample=4))(s)
    assert r1[0].score == r2[0].score
    many = EngagementReward(task.world, EngagementRewardConfig(seed=0, shoppers_per_sample=4000))(s)[0].score
    exact = EngagementReward(task.world, EngagementRewardConfig(mode="expected"))(s)[0].score
    assert many == pytest.approx(exact, abs=0.08)
    broken = Sample("p", "x", reference="gaming")
    results = score_samples(task.reward(), [broken])
    assert results[0].error and broken.reward is None


def test_task_prompts_split_phrasings(task):
    train = task.train_prompts(300, random.Random(0))
    evals = task.eval_prompts()
    assert len(evals) == len(task.world.intents)
    held_out = {p.reference.query for p in evals}
    assert held_out.isdisjoint({p.reference.query for p in train})
    assert all(p.text == render_prompt(p.reference.query, p.reference.segment) for p in train)
    assert task.train_prompts(5, random.Random(1)) == task.train_prompts(5, random.Random(1))
    assert all(len(p.text) < 80 for p in train)


def test_sft_pairs_imitate_bm25(task):
    pairs = task.sft_pairs(4, random.Random(0))
    bm25 = task._bm25_ranker()
    for prompt, completion in pairs:
        query = prompt.removeprefix("search: ").rsplit(" [", 1)[0]
        segment = prompt.rsplit("[", 1)[1].split("]")[0]
        assert completion == render_completion(bm25.rank(query, segment, 0, 5).skus)
    logging = ShopTask(ShopTaskConfig(sft_source="logging"), world=task.world).sft_pairs(4, random.Random(0))
    assert [p for p, _ in logging] == [p for p, _ in pairs]


def test_evaluate_oracle_beats_bm25_with_fixed_shoppers(task):
    prompts = task.eval_prompts()
    bm25 = task._bm25_ranker()
    from feedbackrl.tasks.shop.baselines import OracleRanker

    oracle = OracleRanker(task.world)

    def samples(ranker):
        return [Sample(p.text, render_completion(ranker.rank(p.reference.query, p.reference.segment, 0, 5).skus),
                       reference=p.reference) for p in prompts]

    m_bm25 = task.evaluate(samples(bm25))
    m_oracle = task.evaluate(samples(oracle))
    assert m_bm25 == task.evaluate(samples(bm25))  # fixed evaluation shoppers
    assert m_oracle["ndcg@5"] == pytest.approx(1.0) and m_oracle["valid_fraction"] == 1.0
    assert m_oracle["ctr"] > 1.5 * m_bm25["ctr"]
    for key in ("ctr", "conversion", "add_to_cart_rate", "revenue_per_session", "ctr/mobile", "ndcg@5/tv",
                "mean_list_length", "invalid_per_list"):
        assert key in m_bm25 and np.isfinite(m_bm25[key])
    junk = task.evaluate([Sample(p.text, " nonsense", reference=p.reference) for p in prompts[:3]])
    assert junk["valid_fraction"] == 0.0 and junk["ctr"] == 0.0 and junk["invalid_per_list"] == 1.0


def test_corpus_and_extra_tokens(task):
    corpus = task.corpus()
    assert any("Galaxy S23 Ultra" in line for line in corpus)
    held_out = [q for it in task.world.intents for q in it.eval_phrasings]
    assert not any(f"search: {q} [" in line for q in held_out for line in corpus)
    assert set(task.extra_tokens()) == set(task.world.catalog.skus)


def test_task_config_from_yaml_dict_and_moved_festival():
    from feedbackrl.config import ConfigError, from_dict

    cfg = from_dict(ShopTaskConfig, {"festival_start_day": 1, "k": 3,
                                     "reward": {"mode": "expected", "shoppers": {"model": "cascade"}}}, "shop.yaml")
    assert cfg.reward.shoppers.model == "cascade"
    moved = ShopTask(cfg)
    assert moved.world.calendar.festival_active(1) and not moved.world.calendar.festival_active(5)
    assert moved.reward().config.k == 3
    with pytest.raises(ConfigError, match=r"^shop.yaml: reward.shoppers.bot_rate: must be within \[0, 1\]$"):
        from_dict(ShopTaskConfig, {"reward": {"shoppers": {"bot_rate": 3}}}, "shop.yaml")
