"""The shop demo recipe: the calendar the training steps drive, days to top 3, the scenario
table, the report, and the CLI that reads a run (`shop table`, `shop simulate --policy RUN`)."""

from __future__ import annotations

import json
import math
import random
import sys

import pytest

from feedbackrl.config import ConfigError
from feedbackrl.tasks.shop.task import ShopTask
from feedbackrl.train.shop_calendar import BUNDLED_SCENARIOS, CalendarShopTask, ShopRunConfig, shop_configs_from_dict
from feedbackrl.train.shop_demo import _expected_ctr, launch_days_to_top3


@pytest.fixture(scope="module")
def shop_task():
    return CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=10))


def test_shop_section_splits_into_task_and_run_keys():
    task_cfg, run_cfg = shop_configs_from_dict({"k": 4, "steps_per_day": 7, "reward": {"mode": "expected"}})
    assert (task_cfg.k, task_cfg.reward.mode, run_cfg.steps_per_day) == (4, "expected", 7)
    assert [s.name for s in run_cfg.scenarios] == [s.name for s in BUNDLED_SCENARIOS]
    # another catalog: no scenarios unless the config names them
    _, other = shop_configs_from_dict({"catalog": "mine.json"})
    assert other.scenarios == []
    with pytest.raises(ConfigError, match=r"^shop: steps_per_day: must be >= 0$"):
        shop_configs_from_dict({"steps_per_day": -1})
    with pytest.raises(ConfigError, match=r"^shop: warp: unknown key"):
        shop_configs_from_dict({"warp": 9})
    with pytest.raises(ConfigError, match=r"scenarios\[0\]\.above: expected \[higher_sku, lower_sku\]"):
        shop_configs_from_dict({"scenarios": [{"name": "x", "query": "q", "above": ["A"]}]})


def test_training_steps_drive_the_day(shop_task):
    # 10 steps per day from day 0: steps 1-10 are day 0, 11-20 day 1, ...; step 0 is before training
    assert [shop_task.day_of_step(s) for s in (0, 1, 10, 11, 20, 21, 35)] == [0, 0, 0, 1, 1, 2, 3]
    shop_task.on_train_step(31)
    assert shop_task.day == 3 and shop_task.train_prompts(2, random.Random(0))[0].reference.day == 3
    state = shop_task.state_dict()
    shop_task.on_train_step(1)
    shop_task.load_state_dict(state)
    assert shop_task.day == 3 and shop_task.step == 31


def test_the_constraint_follows_the_day_so_a_launch_becomes_allowed(shop_task):
    from feedbackrl.policy.tiny import train_tokenizer

    world = shop_task.world
    tok = train_tokenizer([p.text for p in world.catalog.products], extra_tokens=world.catalog.skus, vocab_size=400)
    fold6 = tok(" SM-F956-256", add_special_tokens=False)["input_ids"][0]
    constraint = shop_task.constraint(tok)  # built once, as the loop builds its evaluation constraint
    shop_task.set_day(2)
    assert fold6 not in constraint(0, [])
    shop_task.set_day(3)
    assert fold6 in constraint(0, [])
    assert len(constraint(0, [])) == len(world.catalog_on(3))


def test_days_to_top3_of_a_launch_from_daily_lists(shop_task):
    world = shop_task.world
    f6, other = "SM-F956-256", "SM-F946-256"
    lists = {
        3: [("foldable_phone", "q", [other, "A", "B", f6]), ("premium_phone", "q", [f6])],
        4: [("foldable_phone", "q", [other, "A", f6]), ("premium_phone", "q", [f6])],
        5: [("foldable_phone", "q", [f6]), ("premium_phone", "q", [])],
    }
    # foldable_phone: first in the top 3 on day 4 (1 day after launch); premium_phone on day 3 (0)
    assert launch_days_to_top3(world, lists) == {3: {"foldable_phone": 1, "premium_phone": 0}}
    lists[4][0] = ("foldable_phone", "q", [other])
    lists[5][0] = ("foldable_phone", "q", [other])
    assert launch_days_to_top3(world, lists) == {3: {"foldable_phone": None, "premium_phone": 0}}


def test_expected_ctr_of_bm25_gaming_list_by_hand(shop_task):
    world = shop_task.world
    intent = world.intent_by_id["gaming_phone"]
    skus = ["EF-GM02", "EF-GM03", "EF-GM01", "SM-A546-128", "SM-A546-256"]
    u = world.utilities(intent, 0)
    assert [round(u[s], 2) for s in skus] == [0.0, 0.0, 0.0, 0.12, 0.12]
    # e_j = 1 / (1 + j)^0.8, click = sigmoid(10 (u - 0.6))
    by_hand = sum((1 + j) ** -0.8 / (1 + math.exp(-10 * (u[s] - 0.6))) for j, s in enumerate(skus))
    assert by_hand == pytest.approx(0.0099, abs=1e-4)  # 0.0025 x (1 + .57 + .42) + 0.0082 x (.33 + .28)
    assert _expected_ctr(world, shop_task.shop.config.reward.shoppers, intent, 0, skus) == pytest.approx(by_hand, rel=1e-9)


def _cli(capsys, *args):
    from feedbackrl.cli import app
    from feedbackrl.commands.errors import run_cli

    argv, sys.argv = sys.argv, ["feedbackrl", *args]
    try:
        code = run_cli(app)
    finally:
        sys.argv = argv
    return (code, *capsys.readouterr())


TINY = ["model.tiny.hidden_size=32", "model.tiny.num_layers=1", "model.tiny.num_heads=2",
        "model.tiny.intermediate_size=64", "model.tiny.vocab_size=600", "sft.steps=3", "sft.examples=16",
        "sft.warmup_steps=1", "steps=4", "batch_size=16", "algo.minibatch_size=16", "algo.epochs=1", "shop.steps_per_day=1",
        "shop.day=2", "shop.eval_shoppers=8", "progress=false"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Four GRPO steps, one per simulated day 2-5 (the Fold6 launches on day 3)."""
    import torch

    from feedbackrl.config import load_config
    from feedbackrl.train.config import RunConfig
    from feedbackrl.train.shop_demo import run_shop_demo

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config("configs/shop_grpo.yaml", RunConfig, [f"out_dir={out}", "name=tiny-shop"] + TINY)
    return run_shop_demo(cfg, log=lambda *_: None)


def test_tiny_run_writes_summary_scenarios_and_report(tiny_run):
    from pathlib import Path

    s = tiny_run
    run_dir = Path(s["run_dir"])
    for key in ("ctr_vs_bm25", "ctr_vs_oracle", "fold6_days_to_top3", "gaming_s23_above_a54", "wall_seconds",
                "initial_eval", "final_eval", "steps"):
        assert key in s
    assert s["steps"] == 4 and s["days"] == [2, 3, 4, 5] and s["steps_per_day"] == 1
    assert s["ctr_vs_bm25"] == pytest.approx(s["final_eval"]["ctr"] / s["bm25_eval"]["ctr"])
    assert s["ctr_vs_oracle"] == pytest.approx(s["final_eval"]["ctr"] / s["oracle_eval"]["ctr"])
    assert isinstance(s["gaming_s23_above_a54"], bool) and isinstance(s["gaming_s23_above_a54_shown"], bool)
    # the oracle's top 5 for gaming on day 5 is three S24 Ultras and two S24+: no S23 Ultra shown,
    # but in its whole order the S23 Ultra (utility 0.90) is far above the A54
    assert s["gaming_s23_above_a54_shown_oracle"] is False
    assert s["gaming_s23_above_a54_oracle"] is True
    # the oracle shows the Fold6 in the top 3 of its intents on launch day
    assert s["launch_days_to_top3"]["oracle"]["3"] == {"foldable_phone": 0, "premium_phone": 0}
    # BM25 finds it for the held-out "newest fold phone" (its description says newest), not for
    # the training phrasing "foldable phone" (scenario table below)
    assert s["launch_days_to_top3"]["bm25"]["3"]["foldable_phone"] == 0
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 4

    days = json.loads((run_dir / "days.json").read_text())
    assert set(days["curves"]) == {"policy", "bm25", "oracle"}
    assert all(days["curves"][n]["days"] == [2, 3, 4, 5] for n in days["curves"])
    assert days["curves"]["oracle"]["ctr"][0] > days["curves"]["bm25"]["ctr"][0]

    scen = json.loads((run_dir / "scenarios.json").read_text())
    assert [x["name"] for x in scen["scenarios"]] == [x.name for x in BUNDLED_SCENARIOS]
    gaming = scen["scenarios"][0]
    assert gaming["lists"][0]["bm25"][:4] == ["EF-GM02", "EF-GM03", "EF-GM01", "SM-A546-128"]  # docs/shop.md
    ranks = {it["sku"]: it["bm25_rank"] for it in gaming["items"]}
    assert ranks == {"SM-S928-256": None, "SM-S918-256": None, "SM-A546-128": 4}
    assert gaming["lists"][1]["held_out"] and gaming["lists"][1]["query"] == "fast phone for playing games"
    above = gaming["above"]
    # the whole order: every phrasing of the intent, every product of the mobile segment placed once
    assert set(above["full_order_ranks"]) == set(above["per_query"]) and len(above["per_query"]) == 4
    for q, r in above["full_order_ranks"].items():
        assert r["higher"] is not None and r["lower"] is not None  # the whole order holds both
        assert above["per_query"][q] == (r["higher"] < r["lower"])
    assert s["gaming_s23_above_a54"] == all(above["per_query"].values())
    fold6 = scen["scenarios"][4]
    assert fold6["day"] == 5 and {it["sku"]: it["bm25_rank"] for it in fold6["items"]}["SM-F956-256"] is None

    report = (run_dir / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3 and "Fold6 launch" in report


def test_constrained_sampling_starts_the_update_at_ratio_one(tiny_run):
    """One optimizer step per rollout (batch 16 = minibatch 16, `algo.epochs=1` in TINY): pi_theta equals pi_old
    at that step, so no token may be clipped. The SKU constraint renormalises the sampling
    distribution; pi_old must be the model's own log-prob (what the update's forward computes),
    else every ratio is below 1 and tokens with negative advantage lose their gradient."""
    from pathlib import Path

    rows = [json.loads(line) for line in (Path(tiny_run["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "policy/ratio_mean" in r]
    assert len(steps) == 4
    for r in steps:
        assert r["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-4)
        assert r["policy/clip_fraction"] == 0.0


def test_shop_table_prints_the_run(tiny_run, capsys):
    code, out, _ = _cli(capsys, "shop", "table", tiny_run["run_dir"])
    assert code == 0
    for text in ("best phone for gaming", "tablet for drawing", "fridge for bachelors", "budget washing machine",
                 "foldable phone", "Galaxy Z Fold6", "x BM25"):
        assert text in out
    code, _, err = _cli(capsys, "shop", "table", "/nonexistent/run")
    assert code == 2 and "scenarios.json: not found" in err


def test_shop_simulate_takes_a_run_or_checkpoint_directory(tiny_run, capsys, tmp_path):
    out = tmp_path / "sim.json"
    code, text, _ = _cli(capsys, "shop", "simulate", "--policy", tiny_run["run_dir"], "--days", "1",
                         "--sessions-per-day", "30", "--out", str(out))
    assert code == 0 and "wrote" in text
    report = json.loads(out.read_text())["reports"][0]
    assert report["overall"]["sessions"] == 30
    code, _, err = _cli(capsys, "shop", "simulate", "--policy", str(tmp_path), "--days", "1")
    assert code == 2 and "neither a model" in err


def test_a_launched_item_starts_from_its_nearest_older_product(tmp_path):
    """new_item_init: neighbour copies the Fold6's token row from the most similar older foldable,
    once, on its launch day; the choice survives a resume; 'none' leaves the weights alone."""
    import torch

    from feedbackrl.config import ConfigError
    from feedbackrl.policy.model import Policy
    from feedbackrl.policy.tiny import TinyModelConfig, build_tiny_model
    from feedbackrl.tasks.shop.constraint import sku_token_ids

    task = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1, new_item_init="neighbour"))
    world = task.world
    path = build_tiny_model(tmp_path / "m", task.corpus(), task.extra_tokens(),
                            TinyModelConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2))
    policy = Policy.load(path)
    emb = policy.model.get_input_embeddings().weight
    ids = sku_token_ids(policy.tokenizer, world.catalog.skus)
    before = emb.detach().clone()
    task.on_train_step(3)  # day 2: nothing has launched
    assert task.prepare_policy(policy) == []
    assert torch.equal(emb, before)
    task.on_train_step(4)  # day 3: the Fold6 (two storage sizes) launches
    done = dict(task.prepare_policy(policy))
    assert set(done) == {"SM-F956-256", "SM-F956-512"}
    # by its text the Fold6 is nearest its predecessor of the same storage, the Fold5
    assert done == {"SM-F956-256": "SM-F946-256", "SM-F956-512": "SM-F946-512"}
    for new, old in done.items():
        assert torch.equal(emb[ids[new]], emb[ids[old]])
    # the output layer is tied: the new item's logit now equals its neighbour's
    logits = policy.model(torch.tensor([[policy.tokenizer.bos_token_id]])).logits[0, -1]
    assert torch.allclose(logits[ids["SM-F956-256"]], logits[ids[done["SM-F956-256"]]])
    changed = (emb != before).any(dim=1).nonzero().flatten().tolist()
    assert sorted(changed) == sorted(ids[s] for s in done)
    # once only: training moves the row, a later step does not copy it again
    with torch.no_grad():
        emb[ids["SM-F956-256"]] += 1.0
    task.on_train_step(5)
    assert task.prepare_policy(policy) == []
    state = task.state_dict()
    fresh = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1, new_item_init="neighbour"))
    fresh.load_state_dict(state)
    assert fresh.initialised == task.initialised and fresh.prepare_policy(policy) == []
    off = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1))
    off.on_train_step(10)
    assert off.prepare_policy(policy) == []
    with pytest.raises(ConfigError, match="new_item_init: expected 'none' or 'neighbour'"):
        shop_configs_from_dict({"new_item_init": "random"})


def test_the_reference_model_gets_the_launch_start_too(tmp_path):
    """The KL term compares the policy with the frozen reference; the reference's row for a
    launched SKU must be the same start (its own neighbour's row), not the row imitation pushed
    down, or the KL pulls the launch back. Once per SKU; a resumed run applies it again."""
    import torch

    from feedbackrl.policy.model import Policy
    from feedbackrl.policy.tiny import TinyModelConfig, build_tiny_model
    from feedbackrl.tasks.shop.constraint import sku_token_ids

    task = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1, new_item_init="neighbour"))
    path = build_tiny_model(tmp_path / "m", task.corpus(), task.extra_tokens(),
                            TinyModelConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2))
    policy, reference = Policy.load(path), Policy.load(path)
    with torch.no_grad():  # the reference differs from the policy (as after training): rows come from itself
        reference.model.get_input_embeddings().weight.mul_(2.0)
    ref_emb = reference.model.get_input_embeddings().weight
    ids = sku_token_ids(reference.tokenizer, task.world.catalog.skus)
    before = ref_emb.detach().clone()
    task.on_train_step(3)
    task.prepare_policy(policy)
    assert task.prepare_reference(reference) == []  # nothing launched yet
    assert torch.equal(ref_emb, before)
    task.on_train_step(4)
    done = dict(task.prepare_policy(policy))
    assert dict(task.prepare_reference(reference)) == done == {"SM-F956-256": "SM-F946-256",
                                                               "SM-F956-512": "SM-F946-512"}
    for new, old in done.items():
        assert torch.equal(ref_emb[ids[new]], before[ids[old]])
        assert not torch.equal(ref_emb[ids[new]], before[ids[new]])
    changed = (ref_emb != before).any(dim=1).nonzero().flatten().tolist()
    assert sorted(changed) == sorted(ids[s] for s in done)
    assert task.prepare_reference(reference) == []  # once
    # a resumed run loads a fresh reference from the warm start: the start is applied again
    fresh = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1, new_item_init="neighbour"))
    fresh.load_state_dict(task.state_dict())
    reloaded = Policy.load(path)
    assert dict(fresh.prepare_reference(reloaded)) == done
    emb2 = reloaded.model.get_input_embeddings().weight
    for new, old in done.items():
        assert torch.equal(emb2[ids[new]], emb2[ids[old]])


def test_the_online_loop_gives_its_reference_the_launch_start(tmp_path, monkeypatch):
    """A shrunk shop run through the launch (day 3 = step 4) with a KL term: the loop hands its
    frozen reference to the task, whose Fold6 rows then match its Fold5 rows."""
    import torch

    from feedbackrl.config import load_config
    from feedbackrl.tasks.shop.constraint import sku_token_ids
    from feedbackrl.train.config import RunConfig
    from feedbackrl.train.recipe import train

    seen = []
    real = CalendarShopTask.prepare_reference

    def spy(self, reference):
        out = real(self, reference)
        seen.append((reference, out))
        return out

    monkeypatch.setattr(CalendarShopTask, "prepare_reference", spy)
    cfg = load_config("configs/shop_grpo.yaml", RunConfig, [
        f"out_dir={tmp_path}", "name=ref", "algo.kl_coef=0.01", *TINY, "steps=5", "shop.day=0",
        "shop.prompt_candidates=0", "shop.similar_query=", "log_rollouts=false"])
    train(cfg, resume=False, log=lambda *_: None)
    assert len(seen) == 5
    assert [bool(out) for _, out in seen] == [False, False, False, True, False]
    reference = seen[-1][0]
    emb = reference.model.get_input_embeddings().weight
    ids = sku_token_ids(reference.tokenizer, ["SM-F956-256", "SM-F946-256"])
    assert torch.equal(emb[ids["SM-F956-256"]], emb[ids["SM-F946-256"]])
    assert all(r is reference for r, _ in seen)


class SkuTokenizer:
    """Every SKU one token, as the tiny model's tokenizer has them; anything else two tokens."""

    eos_token_id = 0

    def __init__(self, skus):
        self.ids = {f" {s}": i + 1 for i, s in enumerate(skus)}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.ids[text]] if text in self.ids else [900, 901]}


def test_launch_boost_names_launched_skus_for_their_first_days_only():
    from feedbackrl.tasks.shop.constraint import sku_token_ids

    task = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1, launch_boost=3.0, launch_boost_days=2))
    tok = SkuTokenizer([p.sku for p in task.world.catalog.products])
    fold6 = sku_token_ids(tok, ["SM-F956-256", "SM-F956-512"])
    assert fold6 is not None
    constraint = task.constraint(tok)
    by_day = {}
    for day in range(7):
        task.shop.set_day(day)
        by_day[day] = constraint.logit_bias
    assert by_day[2] == {} and by_day[5] == {} and by_day[6] == {}
    assert by_day[3] == by_day[4] == {fold6["SM-F956-256"]: 3.0, fold6["SM-F956-512"]: 3.0}
    off = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1))
    off.shop.set_day(3)
    assert off.constraint(tok).logit_bias == {}
    with pytest.raises(ConfigError, match="launch_boost"):
        shop_configs_from_dict({"launch_boost": -1.0})



def test_exploration_pool_is_the_prompts_segment_on_sale_not_yet_listed():
    task = CalendarShopTask(ShopTask(), ShopRunConfig(steps_per_day=1, explore=0.2))
    world = task.world
    tok = SkuTokenizer([p.sku for p in world.catalog.products])
    prompts = task.train_prompts(8, random.Random(0))
    segments = [p.reference.segment for p in prompts]
    assert task.rollout_segments == segments
    constraint = task.constraint(tok)
    assert constraint.explore == 0.2
    day = task.day
    assert {"mobile", "tv", "appliances"} <= set(segments)
    for row in range(16):  # 8 prompts x 2 samples, prompt-major
        seg = segments[row // 2]
        expected = {tok.ids[" " + p.sku] for p in world.calendar.catalog_on(day) if world.catalog.segment_of(p) == seg}
        pool = constraint.explore_pool(row, 16, [])
        assert set(pool) == expected and len(pool) == len(expected)
        first = pool[0]
        assert first not in constraint.explore_pool(row, 16, [first])  # a listed product is not drawn again
    mobile_row = 2 * segments.index("mobile")
    assert tok.ids[" SM-F956-256"] not in constraint.explore_pool(mobile_row, 16, [])  # on sale from day 3
    task.shop.set_day(3)
    assert tok.ids[" SM-F956-256"] in constraint.explore_pool(mobile_row, 16, [])
    full = [tok.ids[" " + p.sku] for p in world.calendar.catalog_on(day)[:task.shop.config.k]]
    assert constraint.explore_pool(0, 16, full) is None  # the list is complete: only EOS is left
    assert constraint.explore_pool(0, 17, []) is None  # rows that do not match the prompts: no exploring
    assert CalendarShopTask(ShopTask(), ShopRunConfig()).constraint(tok).explore == 0.0
    with pytest.raises(ConfigError, match="explore: must be in"):
        shop_configs_from_dict({"explore": 1.5})


def test_full_orders_place_every_product_of_the_segment_once(tiny_run):
    """The whole order behind the gaming check: each row is a permutation of the products on
    sale that day (no repeat, none left out), and its first k are the greedy top k."""
    from feedbackrl.policy.model import Policy
    from feedbackrl.tasks.shop.world import load_shop_world
    from feedbackrl.train.shop_ranking import full_orders, greedy_lists

    world = load_shop_world()
    policy = Policy.load(tiny_run["checkpoint"])
    queries = [("gaming phone", "mobile"), ("gaming tv", "tv"), ("budget washing machine", "appliances")]
    orders = full_orders(policy, world, queries, 5)
    for order in orders:
        assert sorted(order) == sorted(p.sku for p in world.catalog_on(5))
    tops = greedy_lists(policy, world, queries, 5, 5)
    assert [o[:5] for o in orders] == tops
