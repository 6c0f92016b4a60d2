"""Per-token credit: rewards-to-go with a per-position group baseline (by hand), spans -> token
rewards, the shop reward's item spans, and the online loop with `algo.credit: reward_to_go`."""

import pytest
import torch

from feedbackrl.algos.advantages import group_advantages, group_reward_to_go_advantages
from feedbackrl.sample import Sample
from feedbackrl.train.credit import token_reward_tensor, token_rewards


def test_reward_to_go_advantages_by_hand():
    # group of 2, 3 tokens: rewards-to-go G = [3, 2, 2] and [1, 1, 0]; per-position means [2, 1.5, 1]
    r = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    m = torch.ones(2, 3)
    none = group_reward_to_go_advantages(r, m, 2, scale="none")
    assert torch.allclose(none, torch.tensor([[1.0, 0.5, 1.0], [-1.0, -0.5, -1.0]]))
    # scaled by the std of the sequence rewards 3 and 1: sqrt(2)
    group = group_reward_to_go_advantages(r, m, 2, scale="group")
    assert torch.allclose(group, none / 2 ** 0.5, atol=1e-5)


def test_the_first_token_gets_plain_grpo_and_padding_gets_nothing():
    torch.manual_seed(0)
    r = torch.rand(8, 5)
    m = torch.ones(8, 5)
    m[3, 3:] = 0  # a shorter completion
    m[6, 1:] = 0
    adv = group_reward_to_go_advantages(r, m, 4, scale="group")
    seq = (r * m).sum(-1)
    assert torch.allclose(adv[:, 0], group_advantages(seq, 4, scale="group"), atol=1e-5)
    assert (adv[m == 0] == 0).all()
    # position 4 of row 3 is padding: its G counts as 0 in the group's baseline at that position
    to_go = (r * m).flip(-1).cumsum(-1).flip(-1) * m
    base = to_go[:4, 4].mean()
    std = seq[:4].std()
    assert torch.allclose(adv[0, 4], (to_go[0, 4] - base) / (std + 1e-6), atol=1e-5)


def test_a_group_with_nothing_to_tell_apart_gets_zero():
    r = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.5, 0.5], [1.0, 0.0]])
    adv = group_reward_to_go_advantages(r, torch.ones(4, 2), 2, scale="group")
    assert (adv[:2] == 0).all()  # identical rows: exactly 0, no rounding blown up
    # equal sequence rewards, different order: scaled by a zero std -> 0; unscaled it keeps the order
    assert (adv[2:] == 0).all()
    unscaled = group_reward_to_go_advantages(r, torch.ones(4, 2), 2, scale="none")
    assert torch.allclose(unscaled[2:], torch.tensor([[0.0, 0.25], [0.0, -0.25]]))
    with pytest.raises(ValueError, match="do not split into groups"):
        group_reward_to_go_advantages(torch.zeros(3, 2), torch.ones(3, 2), 2)


def _decode(ids):
    return "".join(chr(i) for i in ids if i != 0)  # id 0 = EOS, decodes to nothing


def test_spans_land_on_the_token_that_completes_them_and_the_rest_on_the_last():
    s = Sample("p", " A B", completion_ids=[32, 65, 32, 66, 0])
    s.details = {"spans": [[1, 2, 0.5], [3, 4, 0.25]]}
    out = token_rewards(s, _decode, score=0.65)  # 0.75 earned by the items, -0.1 penalty
    assert out == pytest.approx([0.0, 0.5, 0.0, 0.25, -0.1])
    assert sum(out) == pytest.approx(0.65)
    # no spans (or an errored sample): the whole score on the last token = sequence credit
    plain = Sample("p", " A B", completion_ids=[32, 65, 32, 66, 0])
    assert token_rewards(plain, _decode, 2.0) == [0.0, 0.0, 0.0, 0.0, 2.0]
    bad = Sample("p", " A B", completion_ids=[32, 65, 0])
    bad.details = {"spans": [["x", None, 1.0], [0, 2]]}  # malformed spans credit nothing
    assert token_rewards(bad, _decode, 1.0) == [0.0, 0.0, 1.0]
    t = token_reward_tensor([s, bad], _decode, torch.tensor([0.65, 1.0]), 5)
    assert torch.allclose(t, torch.tensor([[0.0, 0.5, 0.0, 0.25, -0.1], [0.0, 0.0, 1.0, 0.0, 0.0]]))


def test_the_shop_reward_says_what_each_item_earned():
    from feedbackrl.tasks.shop.reward import EngagementRewardConfig, ShopQuery, item_spans
    from feedbackrl.tasks.shop.task import ShopTask, ShopTaskConfig

    assert item_spans(" 1. ab, AB cd", ["AB", "CD"], [1.0, 2.0]) == [[4, 6, 1.0], [11, 13, 2.0]]
    task = ShopTask(ShopTaskConfig(reward=EngagementRewardConfig(mode="expected")))
    it = task.world.intent_by_id["gaming_phone"]
    q = ShopQuery(it.id, it.train_phrasings[0], it.segment, 0)
    completion = " SM-S918-256 SM-A546-128 SM-S928-256"
    res = task.reward().score_list(q, completion)
    spans = res.details["spans"]
    assert [completion[a:b] for a, b, _ in spans] == ["SM-S918-256", "SM-A546-128", "SM-S928-256"]
    assert sum(r for _, _, r in spans) == pytest.approx(res.score, abs=1e-5)
    # the S23 Ultra on top earns more than the A54 below it (utility and examination both)
    assert spans[0][2] > spans[1][2]
    # a list with a mistake: the items keep their spans, the penalty is what they do not explain
    penalised = task.reward().score_list(q, " SM-S918-256 NOPE")
    assert penalised.details["rule"] == "penalised"
    assert sum(r for _, _, r in penalised.details["spans"]) > penalised.score
    # gated: the list earns nothing, so no item does either
    gate = ShopTask(ShopTaskConfig(reward=EngagementRewardConfig(mode="expected", gate_invalid=True)))
    gated = gate.reward().score_list(q, " SM-S918-256 NOPE")
    assert gated.details["rule"] == "gated" and "spans" not in gated.details


def test_an_online_step_with_reward_to_go_credit_trains(tmp_path, monkeypatch):
    """Two GRPO steps of the shop recipe with per-item credit: the advantages vary along a list
    (with sequence credit they are constant along it) and the run completes."""
    import math

    import feedbackrl.train.online as online
    from feedbackrl.config import load_config
    from feedbackrl.train.config import RunConfig
    from feedbackrl.train.recipe import train

    seen = []
    real = online.group_reward_to_go_advantages

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append((out, args[1]))
        return out

    monkeypatch.setattr(online, "group_reward_to_go_advantages", spy)
    cfg = load_config("configs/shop_grpo.yaml", RunConfig, [
        f"out_dir={tmp_path}", "name=credit", "algo.credit=reward_to_go",
        "model.tiny.hidden_size=32", "model.tiny.num_layers=1", "model.tiny.num_heads=2",
        "model.tiny.intermediate_size=64", "model.tiny.vocab_size=600", "sft.steps=3", "sft.examples=16",
        "sft.warmup_steps=1", "steps=2", "batch_size=16", "algo.minibatch_size=16", "shop.steps_per_day=1",
        "shop.eval_shoppers=4", "shop.prompt_candidates=0", "progress=false", "log_rollouts=false"])
    summary = train(cfg, resume=False, log=lambda *_: None)
    assert summary["steps"] == 2 and len(seen) == 2
    adv, mask = seen[0]
    varying = [(adv[i][mask[i] > 0].max() - adv[i][mask[i] > 0].min()).item() for i in range(len(adv))]
    assert max(varying) > 1e-4
    assert all(math.isfinite(v) for v in adv.flatten().tolist())
