from decimal import Decimal

import pytest

from feedbackrl.rewards.rules import (
    BusinessRuleReward,
    RuleError,
    labelled_amounts,
    load_rules,
    recompute_cart,
    recompute_stock,
)
from feedbackrl.sample import Sample

# Worked by hand:
#   MUG-1: 2 x 12.50 = 25.00, 10% off = 2.50, net 22.50, 20% tax = 4.50, line 27.00
#   TEE-3: 1 x 19.99 = 19.99, no discount,   net 19.99, 20% tax = 3.998 -> 4.00, line 23.99
#   subtotal 44.99, discount 2.50, tax 8.50, total 50.99 (+ shipping 4.99 = 55.98)
CART = {
    "kind": "cart",
    "lines": [
        {"sku": "MUG-1", "qty": 2, "unit_price": "12.50", "discount_pct": 10, "tax_rate": 20},
        {"sku": "TEE-3", "qty": 1, "unit_price": "19.99", "tax_rate": 20},
    ],
    "check": ["line_totals", "subtotal", "discount", "tax", "total"],
}


def test_recompute_cart_by_hand():
    lines, totals = recompute_cart(CART)
    assert [l.total for l in lines] == [Decimal("27.00"), Decimal("23.99")]
    assert totals == {"subtotal": Decimal("44.99"), "discount": Decimal("2.50"), "tax": Decimal("8.50"),
                      "shipping": Decimal("0.00"), "total": Decimal("50.99")}
    _, with_shipping = recompute_cart({**CART, "shipping": "4.99"})
    assert with_shipping["total"] == Decimal("55.98")


def test_rounding_is_half_up_per_line():
    # 0.25 * 50% = 0.125 -> 0.13 half-up (banker's rounding would give 0.12)
    lines, totals = recompute_cart({"kind": "cart", "lines": [{"qty": 1, "unit_price": "0.25", "tax_rate": 50}]})
    assert lines[0].tax == Decimal("0.13") and totals["total"] == Decimal("0.38")
    # 3 x 1.15 = 3.45; 15% = 0.5175 -> 0.52; net 2.93; 8.25% = 0.241725 -> 0.24; line 3.17
    lines, _ = recompute_cart({"kind": "cart", "lines": [{"qty": 3, "unit_price": "1.15", "discount_pct": 15, "tax_rate": "8.25"}]})
    assert (lines[0].discount, lines[0].tax, lines[0].total) == (Decimal("0.52"), Decimal("0.24"), Decimal("3.17"))


def _score(completion, rule=CART, **kw):
    return BusinessRuleReward(**kw)([Sample("q", completion, reference=rule)])[0]


def test_correct_cart_answer_in_text():
    answer = "Line 1 total: $27.00\nTEE-3: 23.99\nSubtotal: 44.99\nDiscount (10%): -$2.50\nVAT at 20% is 8.50\nSo the grand total is $50.99."
    r = _score(answer)
    assert r.error is None
    assert r.details["mismatches"] == [] and r.details["missing"] == []
    assert r.score == 1.0 and r.details["checked"] == 6  # two lines + four cart fields


def test_correct_cart_answer_as_json():
    answer = 'Here you go: {"line_totals": [27.00, "23.99"], "subtotal": 44.99, "discount": 2.5, "tax": "8.50", "total": "$50.99"}'
    assert _score(answer).score == 1.0


def test_mismatch_names_the_line_and_field():
    answer = "Line 1: 27.00\nLine 2: 23.98\nSubtotal: 44.99\nDiscount: 2.50\nTax: 8.50\nTotal: 50.98"
    r = _score(answer)
    assert r.score == 0.0
    assert r.details["mismatches"] == [
        {"field": "line 2 (TEE-3)", "expected": "23.99", "got": "23.98"},
        {"field": "total", "expected": "50.99", "got": "50.98"},
    ]
    partial = _score(answer, partial_credit=True)
    assert partial.score == pytest.approx(4 / 6)


def test_tolerance_and_missing_fields():
    assert _score("Total: 50.98", rule={**CART, "check": ["total"]}).score == 0.0
    assert _score("Total: 50.98", rule={**CART, "check": ["total"]}, tolerance="0.01").score == 1.0
    assert _score("Total: 50.98", rule={**CART, "check": ["total"], "tolerance": 0.01}).score == 1.0
    r = _score("Total: 50.99")
    assert r.details["missing"] == ["line 1 (MUG-1)", "line 2 (TEE-3)", "subtotal", "discount", "tax"]


def test_last_mention_wins_and_subtotal_is_not_total():
    pairs = labelled_amounts("Subtotal: 44.99\nTotal: 40\nActually the total is 50.99")
    assert pairs[0] == ("subtotal", Decimal("44.99"))
    assert _score("Subtotal: 44.99\nTotal: 40\nActually the total is 50.99", rule={**CART, "check": ["total"]}).score == 1.0
    assert _score("Subtotal: 50.99", rule={**CART, "check": ["total"]}).details["missing"] == ["total"]


STOCK = {
    "kind": "stock",
    "sku": "MUG-1",
    "start": 40,
    # 40 -5 = 35, +1 = 36, +20 = 56, -60 = -4 (or 0 when clipped), +3 = -1 (or 3)
    "events": [
        {"type": "sale", "qty": 5},
        {"type": "return", "qty": 1},
        {"type": "restock", "qty": 20},
        {"type": "sale", "qty": 60},
        {"type": "adjustment", "qty": 3},
    ],
}


def test_stock_arithmetic_by_hand():
    end, trace = recompute_stock(STOCK)
    assert end == -1
    assert [t["on_hand"] for t in trace] == [35, 36, 56, -4, -1]
    clipped, trace = recompute_stock({**STOCK, "oversell": "clip"})
    assert clipped == 3
    assert [t["oversold"] for t in trace] == [False, False, False, True, False]


def test_stock_reward():
    assert _score("End stock: -1", rule=STOCK).score == 1.0
    assert _score("after all that we have 3 left", rule={**STOCK, "oversell": "clip"}).score == 1.0  # last integer
    r = _score("Closing stock: 56", rule=STOCK)
    assert r.score == 0.0
    assert r.details["mismatches"] == [{"field": "end stock (MUG-1)", "expected": "-1", "got": "56"}]
    assert r.details["expected"]["oversold_events"] == [4]


def test_malformed_rules_are_errors_not_zeros():
    assert _score("1", rule={"kind": "teleport"}).error.startswith("reference is not a rule")
    bad_line = {"kind": "cart", "lines": [{"sku": "A", "qty": 1}]}
    assert _score("Total: 1", rule=bad_line).error == "cart line 1: needs 'qty' and 'unit_price'"
    bad_price = {"kind": "cart", "lines": [{"qty": 1, "unit_price": "cheap"}]}
    assert _score("Total: 1", rule=bad_price).error == "cart line 1 unit_price: 'cheap' is not a number"
    assert "unknown check fields" in _score("Total: 1", rule={**CART, "check": ["vibes"]}).error


def test_load_rules_from_yaml(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "- kind: cart\n  lines:\n    - {sku: A, qty: 3, unit_price: '1.15', discount_pct: 15, tax_rate: '8.25'}\n"
        "- kind: stock\n  start: 5\n  events: [{type: sale, qty: 2}]\n"
    )
    cart, stock = load_rules(path)
    assert _score("Total: 3.17", rule=cart).score == 1.0
    assert _score("end stock: 3", rule=stock).score == 1.0
    with pytest.raises(RuleError, match="no such rule file"):
        load_rules(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- {kind: nope}\n")
    with pytest.raises(RuleError, match="rule 0 needs 'kind'"):
        load_rules(tmp_path / "bad.yaml")
