"""Business-logic checks written as data: recompute a cart or a stock count, compare the answer.

A rule is a dict (or a YAML document) in `sample.reference`:

    kind: cart
    lines:
      - {sku: MUG-1, qty: 2, unit_price: "12.50", discount_pct: 10, tax_rate: 20}
      - {sku: TEE-3, qty: 1, unit_price: "19.99", tax_rate: 20}
    shipping: "4.99"          # optional, added to the total untaxed
    check: [line_totals, subtotal, discount, tax, total]   # default [total]

    kind: stock
    sku: MUG-1
    start: 40
    events: [{type: sale, qty: 5}, {type: return, qty: 1}, {type: restock, qty: 20}]
    oversell: allow           # or "clip": a sale never takes stock below 0

Money is Decimal throughout. Each line rounds its discount and its tax half-up to the cent
(ROUND_HALF_UP, "0.125 -> 0.13", as printed invoices do, not banker's rounding) and the cart
sums the rounded line amounts, so the totals always equal the sum of the printed lines:
  gross = qty * unit_price;  discount = round(gross * discount_pct / 100);  net = gross - discount
  tax = round(net * tax_rate / 100);  line_total = net + tax;  total = sum(line_total) + shipping
Stock: end = start - sales + returns + restocks + adjustments (adjustments are signed).

The answer is read from the completion: a JSON object with the field names, or "field: amount"
lines ("Subtotal: $25.00", "Line 2: 23.99", "TEE-3: 23.99", "Total due: 49.49"); the last
mention of a field wins. An answer within `tolerance` of the recomputed value matches.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample

CENT = Decimal("0.01")
CART_FIELDS = ("line_totals", "subtotal", "discount", "tax", "shipping", "total")


class RuleError(ValueError):
    """A rule (the reference data) is malformed; the message is one line."""


def round_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _decimal(value: Any, where: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RuleError(f"{where}: {value!r} is not a number") from None


# ---------------------------------------------------------------------- reading the answer

# "label: amount" anywhere, with up to five words of label before ":", "=", "is", "was",
# "comes to" or "equals"; the label is classified afterwards by its last words.
_LABELLED_AMOUNT = re.compile(
    r"(?<![\w#%.(])(?P<label>(?:[\w#(][\w\-#().%]*[ \t]+){0,4}[\w#(][\w\-#().%]*)[ \t]*"
    r"(?::?[ \t]*\(?[\d.]+%\)?[ \t]*)?(?::|=|\bis\b|\bwas\b|\bcomes to\b|\bequals\b)"
    # an amount, but not a rate: "Discount: 10% = 2.50" reads 2.50 under the label "discount"
    r"[ \t]*(?P<amount>[-\u2212]?[ \t]*[$€£]?[ \t]*[-\u2212]?\d[\d,]*(?:\.\d+)?)(?![\d,.]*[ \t]*%)",
    re.IGNORECASE,
)
# Synonyms per field, matched against the *end* of a label, longest first, so "line 1 total"
# is a line and not the cart total, and "sub total" is not "total".
FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "subtotal": ("subtotal", "sub total", "items subtotal"),
    "discount": ("discount", "discounts", "total discount", "discount total", "savings", "total savings"),
    "tax": ("tax", "vat", "sales tax", "total tax", "tax total", "total vat"),
    "shipping": ("shipping", "delivery", "shipping cost", "delivery cost"),
    "total": ("total", "grand total", "total due", "amount due", "order total", "cart total", "final total", "total price"),
    "end_stock": ("end stock", "ending stock", "closing stock", "final stock", "remaining stock", "stock on hand",
                  "on hand", "end inventory", "ending inventory", "closing inventory", "remaining", "end stock level"),
}


def normalize_label(label: str) -> str:
    """Lowercase words without rates or asides: "Line #1 (10% off)" -> "line 1"."""
    label = re.sub(r"\([^)]*\)?", " ", label.lower())
    words = re.sub(r"[-_#]", " ", label).split()
    words = [w.rstrip(".") for w in words if not w.endswith("%")]
    while words and words[-1] in ("at", "of", "for", "@"):  # "VAT at 20% is 8.50"
        words.pop()
    return " ".join(words)


def _parse_amount(text: str) -> Decimal:
    first_digit = re.search(r"\d", text).start()
    value = Decimal(text[first_digit:].replace(",", ""))
    return -value if any(ch in "-\u2212" for ch in text[:first_digit]) else value


def labelled_amounts(completion: str) -> list[tuple[str, Decimal]]:
    """(normalised label, amount) pairs from a JSON object in the completion, else from text."""
    data = _json_answer(completion)
    if data is None:
        return [(normalize_label(m.group("label")), _parse_amount(m.group("amount"))) for m in _LABELLED_AMOUNT.finditer(completion)]
    pairs = []
    for key, value in data.items():
        if normalize_label(str(key)) in ("line totals", "lines") and isinstance(value, (list, dict)):
            items = value.items() if isinstance(value, dict) else ((f"line {i}", v) for i, v in enumerate(value, start=1))
            pairs += [(normalize_label(str(k)), v) for k, v in items]
        else:
            pairs.append((normalize_label(str(key)), value))
    out = []
    for label, value in pairs:
        try:
            out.append((label, Decimal(str(value).replace(",", "").strip().lstrip("$€£"))))
        except InvalidOperation:
            continue  # a non-numeric field ("currency": "EUR") is not an answer
    return out


def _ends_with(label: str, phrase: str) -> bool:
    return label == phrase or label.endswith(" " + phrase)


def find_field(pairs: list[tuple[str, Decimal]], phrases: Sequence[str], shadowing: Sequence[str] = ()) -> Decimal | None:
    """The last amount whose label ends with one of `phrases`, unless a longer phrase from
    `shadowing` (another field's) fits the label better."""
    found = None
    for label, amount in pairs:
        best = max((p for p in phrases if _ends_with(label, p)), key=len, default=None)
        if best is None:
            continue
        if any(len(s) > len(best) and _ends_with(label, s) for s in shadowing):
            continue
        found = amount
    return found


def _json_answer(completion: str) -> dict | None:
    start, end = completion.find("{"), completion.rfind("}")
    if start == -1 or end <= start:
        return None
    try:
        data = json.loads(completion[start : end + 1])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------- cart

@dataclass
class CartLine:
    sku: str
    gross: Decimal
    discount: Decimal
    net: Decimal
    tax: Decimal
    total: Decimal


def recompute_cart(rule: dict) -> tuple[list[CartLine], dict[str, Decimal]]:
    """Lines and cart totals (subtotal, discount, tax, shipping, total) of a cart rule."""
    lines_data = rule.get("lines")
    if not isinstance(lines_data, list) or not lines_data:
        raise RuleError("cart rule needs a non-empty 'lines' list")
    lines = []
    for i, item in enumerate(lines_data, start=1):
        where = f"cart line {i}"
        if not isinstance(item, dict) or "qty" not in item or "unit_price" not in item:
            raise RuleError(f"{where}: needs 'qty' and 'unit_price'")
        qty = _decimal(item["qty"], f"{where} qty")
        gross = round_cents(qty * _decimal(item["unit_price"], f"{where} unit_price"))
        discount = round_cents(gross * _decimal(item.get("discount_pct", 0), f"{where} discount_pct") / 100)
        net = gross - discount
        tax = round_cents(net * _decimal(item.get("tax_rate", 0), f"{where} tax_rate") / 100)
        lines.append(CartLine(str(item.get("sku", i)), gross, discount, net, tax, net + tax))
    shipping = round_cents(_decimal(rule.get("shipping", 0), "cart shipping"))
    totals = {
        "subtotal": sum((l.gross for l in lines), Decimal("0")),
        "discount": sum((l.discount for l in lines), Decimal("0")),
        "tax": sum((l.tax for l in lines), Decimal("0")),
        "shipping": shipping,
        "total": sum((l.total for l in lines), Decimal("0")) + shipping,
    }
    return lines, totals


def check_cart(rule: dict, completion: str, tolerance: Decimal) -> tuple[list[dict], dict]:
    """(comparisons, expected) where each comparison is {field, expected, got, ok}."""
    lines, totals = recompute_cart(rule)
    check = rule.get("check", ["total"])
    unknown = set(check) - set(CART_FIELDS)
    if unknown:
        raise RuleError(f"cart rule: unknown check fields {sorted(unknown)}; choose from {list(CART_FIELDS)}")
    pairs = labelled_amounts(completion)
    line_phrases = [(f"line {i}", f"line {i} total", normalize_label(l.sku), normalize_label(l.sku) + " total")
                    for i, l in enumerate(lines, start=1)]
    every_phrase = [p for phrases in FIELD_SYNONYMS.values() for p in phrases] + [p for ps in line_phrases for p in ps]
    comparisons = []
    if "line_totals" in check:
        for i, (line, phrases) in enumerate(zip(lines, line_phrases), start=1):
            got = find_field(pairs, phrases, every_phrase)
            comparisons.append(_compare(f"line {i} ({line.sku})", line.total, got, tolerance))
    for name in CART_FIELDS[1:]:
        if name in check:
            got = find_field(pairs, FIELD_SYNONYMS[name], every_phrase)
            if name == "discount" and got is not None:
                got = abs(got)  # "Discount: -2.50" and "Discount: 2.50" say the same
            comparisons.append(_compare(name, totals[name], got, tolerance))
    expected = {k: str(v) for k, v in totals.items()}
    expected["line_totals"] = {l.sku: str(l.total) for l in lines}
    return comparisons, expected


def _compare(field_name: str, expected: Decimal, got: Decimal | None, tolerance: Decimal) -> dict:
    ok = got is not None and abs(got - expected) <= tolerance
    return {"field": field_name, "expected": str(expected), "got": None if got is None else str(got), "ok": ok}


# ---------------------------------------------------------------------- stock

_STOCK_SIGNS = {"sale": -1, "return": 1, "restock": 1, "adjustment": 1}


def recompute_stock(rule: dict) -> tuple[int, list[dict]]:
    """(end stock, trace of {event, type, qty, applied, on_hand, oversold}) of a stock rule."""
    if "start" not in rule:
        raise RuleError("stock rule needs 'start'")
    on_hand = int(_decimal(rule["start"], "stock start"))
    oversell = rule.get("oversell", "allow")
    if oversell not in ("allow", "clip"):
        raise RuleError(f"stock rule: oversell must be 'allow' or 'clip', got {oversell!r}")
    trace = []
    for i, event in enumerate(rule.get("events", []), start=1):
        kind = event.get("type") if isinstance(event, dict) else None
        if kind not in _STOCK_SIGNS or "qty" not in event:
            raise RuleError(f"stock event {i}: needs 'qty' and a 'type' in {sorted(_STOCK_SIGNS)}")
        qty = int(_decimal(event["qty"], f"stock event {i} qty"))
        applied = _STOCK_SIGNS[kind] * qty
        oversold = kind == "sale" and qty > on_hand
        if oversold and oversell == "clip":
            applied = -max(on_hand, 0)
        on_hand += applied
        trace.append({"event": i, "type": kind, "qty": qty, "applied": applied, "on_hand": on_hand, "oversold": oversold})
    return on_hand, trace


def check_stock(rule: dict, completion: str, tolerance: Decimal) -> tuple[list[dict], dict]:
    end, trace = recompute_stock(rule)
    got = find_field(labelled_amounts(completion), FIELD_SYNONYMS["end_stock"])
    if got is None and _json_answer(completion) is None:
        numbers = re.findall(r"(?<![\w.])-?\d[\d,]*(?![\d.]\d)", completion)  # no label: the last integer
        got = Decimal(numbers[-1].replace(",", "")) if numbers else None
    comparison = _compare(f"end stock ({rule.get('sku', 'item')})", Decimal(end), got, tolerance)
    oversold = [t["event"] for t in trace if t["oversold"]]
    return [comparison], {"end_stock": end, "oversold_events": oversold, "trace": trace}


RULE_CHECKS: dict[str, Callable[[dict, str, Decimal], tuple[list[dict], dict]]] = {
    "cart": check_cart,
    "stock": check_stock,
}


def load_rules(path: str | Path) -> list[dict]:
    """Rules from a YAML or JSON file holding one rule or a list of them."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise RuleError(f"{path}: no such rule file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RuleError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    rules = data if isinstance(data, list) else [data]
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or rule.get("kind") not in RULE_CHECKS:
            raise RuleError(f"{path}: rule {i} needs 'kind' in {sorted(RULE_CHECKS)}")
    return rules


@dataclass
class BusinessRuleReward:
    """Recompute the rule in `sample.reference` and compare the completion's answer.

    Score 1.0 when every checked field matches (or, with `partial_credit`, the fraction that
    match). A rule may set its own `tolerance`. A malformed rule is an error, not a 0.
    details: kind, expected (recomputed values), mismatches [{field, expected, got}],
    missing (fields the answer never gave), checked (number of fields).
    """

    name: str = "rules"
    tolerance: str | float = "0"  # largest |answer - expected| that still matches, in currency units
    partial_credit: bool = False

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [self._score(s) for s in samples]

    def _score(self, sample: Sample) -> RewardResult:
        rule = sample.reference
        if not isinstance(rule, dict) or rule.get("kind") not in RULE_CHECKS:
            return RewardResult(0.0, {}, f"reference is not a rule with 'kind' in {sorted(RULE_CHECKS)}")
        try:
            tolerance = _decimal(rule.get("tolerance", self.tolerance), "tolerance")
            comparisons, expected = RULE_CHECKS[rule["kind"]](rule, sample.completion, tolerance)
        except RuleError as e:
            return RewardResult(0.0, {"kind": rule["kind"]}, str(e))
        n_ok = sum(c["ok"] for c in comparisons)
        details = {
            "kind": rule["kind"],
            "expected": expected,
            "mismatches": [{k: c[k] for k in ("field", "expected", "got")} for c in comparisons if not c["ok"] and c["got"] is not None],
            "missing": [c["field"] for c in comparisons if c["got"] is None],
            "checked": len(comparisons),
        }
        if self.partial_credit:
            score = n_ok / len(comparisons) if comparisons else 0.0
        else:
            score = float(n_ok == len(comparisons))
        return RewardResult(score, details)
