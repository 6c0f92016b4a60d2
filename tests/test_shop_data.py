"""Shop data: the bundled catalog and intents, schema errors, the rule engine and drift."""

from __future__ import annotations

import copy
import json

import pytest

from feedbackrl.config import ConfigError
from feedbackrl.tasks.shop.baselines import BM25Ranker
from feedbackrl.tasks.shop.catalog import DEFAULT_CATALOG, parse_catalog
from feedbackrl.tasks.shop.drift import ShopCalendar
from feedbackrl.tasks.shop.intents import DEFAULT_INTENTS, parse_intents
from feedbackrl.tasks.shop.preferences import UtilityModel
from feedbackrl.tasks.shop.world import load_shop_world

S23_ULTRA, A54, FOLD6 = "SM-S918-256", "SM-A546-128", "SM-F956-256"


@pytest.fixture(scope="module")
def world():
    return load_shop_world()


@pytest.fixture(scope="module")
def raw_catalog():
    return json.loads(DEFAULT_CATALOG.read_text())


@pytest.fixture(scope="module")
def raw_intents():
    return json.loads(DEFAULT_INTENTS.read_text())


def test_bundled_data_sizes(world):
    assert len(world.catalog) >= 150
    assert len(world.intents) >= 40
    assert all(len(it.phrasings) >= 3 and len(it.eval_phrasings) >= 1 for it in world.intents)
    assert {it.segment for it in world.intents} == {"mobile", "tv", "appliances"}
    for sku in (S23_ULTRA, A54, FOLD6):
        assert sku in world.catalog


def test_gaming_utility_favours_s23_ultra_but_bm25_does_not(world):
    gaming = world.intent_for_query("best phone for gaming")
    u = world.utilities(gaming, 0)
    assert u[S23_ULTRA] > 0.85 and u[A54] < 0.2
    shown = BM25Ranker(world).rank("best phone for gaming", "mobile", 0, 5).skus
    # BM25 shows the keyword-stuffed accessories and the A54, never the S23 Ultra.
    assert S23_ULTRA not in shown and A54 in shown
    assert all(u[s] < 0.2 for s in shown)


def test_fold6_launch_and_festival_shift(world):
    fold = world.catalog.by_sku[FOLD6]
    assert fold.launch_day == 3
    assert FOLD6 not in {p.sku for p in world.catalog_on(2)}
    assert FOLD6 in {p.sku for p in world.catalog_on(3)}
    for query in ("foldable phone", "premium flagship phone"):
        intent = world.intent_for_query(query)
        assert FOLD6 in world.utility_model.ideal_ranking(intent, 3, 2)
    budget = world.intent_for_query("budget washing machine")
    before, during = world.utilities(budget, 4), world.utilities(budget, 5)
    assert world.calendar.festival_active(5) and not world.calendar.festival_active(4)
    # The 7 kg EcoBubble is 30% off during the sale: cheaper and discounted, so more wanted.
    assert world.price_on(world.catalog.by_sku["WW70T4020"], 5) == pytest.approx(399 * 0.7)
    assert during["WW70T4020"] > before["WW70T4020"] + 0.05
    # ...while an undiscounted washer loses ground: the discount rule now counts and it scores 0.
    assert during["WW11BB944"] < before["WW11BB944"]


def test_rule_engine_by_hand():
    catalog = parse_catalog({
        "segments": {"s": ["phone", "case"]},
        "festival": {"start_day": 2, "end_day": 4},
        "products": [
            {"sku": "P1", "title": "a", "category": "phone", "description": "", "attributes": {"price": 100, "hz": 60}},
            {"sku": "P2", "title": "b", "category": "phone", "description": "", "attributes": {"price": 300, "hz": 120},
             "festival_discount_percent": 50},
            {"sku": "C1", "title": "c", "category": "case", "description": "", "attributes": {"price": 10}},
        ],
    })
    intents = parse_intents({"intents": [{
        "id": "i", "segment": "s", "phrasings": ["x", "y"],
        "preference": {"category": "phone",
                       "prefer": [{"attr": "hz", "direction": "high", "weight": 3},
                                  {"attr": "price", "direction": "low", "weight": 1},
                                  {"attr": "discount_percent", "direction": "high", "weight": 2}],
                       "require": [{"attr": "price", "max": 200}], "require_factor": 0.5}}]}, catalog)
    cal = ShopCalendar(catalog)
    model = UtilityModel(catalog, cal)
    it = intents[0]
    # Day 0 (no sale; the discount rule is left out): P1 = (3*0 + 1*1) / 4; P2 = (3*1 + 0) / 4,
    # halved because it costs more than 200.
    u0 = model.utilities(it, 0)
    assert u0 == pytest.approx({"P1": 0.25, "P2": 0.375, "C1": 0.0})
    # Day 2 (sale): P2 costs 150 -> price score (300-150)/200 = 0.75, discount score 50/50 = 1,
    # and it now passes the 200 cap: (3 + 0.75 + 2) / 6. P1: (0 + 1 + 0) / 6.
    u2 = model.utilities(it, 2)
    assert u2["P2"] == pytest.approx(5.75 / 6)
    assert u2["P1"] == pytest.approx(1 / 6)


def _catalog_error(raw, mutate) -> str:
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(ConfigError) as e:
        parse_catalog(data, "cat.json")
    return str(e.value)


def test_catalog_errors_name_file_row_and_field(raw_catalog):
    msg = _catalog_error(raw_catalog, lambda d: d["products"][3].pop("title"))
    assert msg.startswith("cat.json: products[3] (sku ") and msg.endswith("title: missing field")
    msg = _catalog_error(raw_catalog, lambda d: d["products"][5]["attributes"].__setitem__("price", "cheap"))
    assert "products[5]" in msg and "attributes.price: expected a number" in msg
    msg = _catalog_error(raw_catalog, lambda d: d["products"][7].__setitem__("sku", d["products"][2]["sku"].lower()))
    assert "products[7]" in msg and "sku: duplicate of products[2]" in msg
    msg = _catalog_error(raw_catalog, lambda d: d["products"][0].__setitem__("sku", "SM S918"))
    assert "products[0]" in msg and "sku: must be one word" in msg
    msg = _catalog_error(raw_catalog, lambda d: d["products"][1].__setitem__("category", "spaceship"))
    assert "products[1]" in msg and "category: 'spaceship' is in no segment" in msg
    msg = _catalog_error(raw_catalog, lambda d: d["products"][1].__setitem__("launch_day", -1))
    assert "launch_day: expected an integer >= 0" in msg
    assert "\n" not in msg


def test_intent_errors_name_file_row_and_field(world, raw_intents):
    def err(mutate) -> str:
        data = copy.deepcopy(raw_intents)
        mutate(data)
        with pytest.raises(ConfigError) as e:
            parse_intents(data, world.catalog, "int.json")
        return str(e.value)

    msg = err(lambda d: d["intents"][0]["preference"]["prefer"][0].__setitem__("attr", "warp_speed"))
    assert msg.startswith("int.json: intents[0] (id gaming_phone): preference.prefer[0]: attr: unknown attribute 'warp_speed'")
    msg = err(lambda d: d["intents"][2].__setitem__("segment", "garden"))
    assert "intents[2]" in msg and "segment: 'garden' is not a catalog segment" in msg
    msg = err(lambda d: d["intents"][4]["preference"]["prefer"][0].update({"max": 3}))
    assert "needs exactly one of" in msg
    msg = err(lambda d: d["intents"][1].__setitem__("holdout", 4))
    assert "holdout: must leave at least one training and one held-out phrasing" in msg
    msg = err(lambda d: d["intents"][1]["phrasings"].append("gaming phone"))
    assert "'gaming phone' is also a phrasing of gaming_phone" in msg
    msg = err(lambda d: d["intents"][0]["preference"]["prefer"][0].__setitem__("attr", "stylus"))
    assert "attribute 'stylus' is not numeric" in msg


def test_load_errors_are_one_line(tmp_path):
    bad = tmp_path / "catalog.json"
    bad.write_text('{"products": [}')
    with pytest.raises(ConfigError, match=r"catalog.json: line 1: invalid JSON"):
        load_shop_world(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_shop_world(tmp_path / "missing.json")
