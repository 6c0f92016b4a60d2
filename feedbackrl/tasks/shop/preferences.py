"""The rule engine: an intent's preference rules -> a hidden utility in [0, 1] per product.

For a product of one of the intent's categories:

    utility = clip( sum_r weight_r * score_r / sum of positive weights, 0, 1 )
              * (require_factor if any `require` rule fails else 1)

where score_r is in [0, 1]:
- direction "high": (value - lo) / (hi - lo), lo and hi the attribute's range over the
  intent's categories in the whole catalog (launched or not, so a launch does not rescale
  everyone else); "low" is 1 minus that;
- max / min / equals: 1 when the test holds, else 0;
- an attribute the product lacks scores 0 (and fails a require rule).
Products of other categories have utility 0: a fridge is no answer to "gaming phone".
`price` is the price on the day and `discount_percent` the active festival discount, so the
same intent has different utilities during the sale (see drift.py); outside the sale a
`discount_percent` rule is left out of both sums.
"""

from __future__ import annotations

from feedbackrl.tasks.shop.catalog import Catalog, Product, is_number
from feedbackrl.tasks.shop.drift import ShopCalendar
from feedbackrl.tasks.shop.intents import Intent, PreferenceRule


class UtilityModel:
    def __init__(self, catalog: Catalog, calendar: ShopCalendar):
        self.catalog = catalog
        self.calendar = calendar
        self._ranges: dict[tuple[tuple[str, ...], str], tuple[float, float]] = {}
        self._cache: dict[tuple[str, int], dict[str, float]] = {}

    def _value(self, product: Product, attr: str, day: int):
        if attr == "price":
            return self.calendar.price_on(product, day)
        if attr == "discount_percent":
            return self.calendar.discount_on(product, day)
        return product.attributes.get(attr)

    def _range(self, categories: tuple[str, ...], attr: str) -> tuple[float, float]:
        key = (categories, attr)
        if key not in self._ranges:
            members = [p for p in self.catalog.products if p.category in categories]
            if attr == "discount_percent":
                values = [0.0] + [p.festival_discount_percent for p in members]
            else:
                attr_name = "price" if attr == "price" else attr
                values = [float(p.attributes[attr_name]) for p in members if is_number(p.attributes.get(attr_name))]
            self._ranges[key] = (min(values), max(values)) if values else (0.0, 0.0)
        return self._ranges[key]

    def _score(self, rule: PreferenceRule, product: Product, categories: tuple[str, ...], day: int) -> float:
        value = self._value(product, rule.attr, day)
        if value is None:
            return 0.0
        if rule.direction is not None:
            lo, hi = self._range(categories, rule.attr)
            if hi <= lo:
                scaled = 0.5  # every product has the same value: the rule cannot tell them apart
            else:
                scaled = min(max((float(value) - lo) / (hi - lo), 0.0), 1.0)
            return scaled if rule.direction == "high" else 1.0 - scaled
        if rule.max is not None:
            return 1.0 if float(value) <= rule.max else 0.0
        if rule.min is not None:
            return 1.0 if float(value) >= rule.min else 0.0
        return 1.0 if value == rule.equals else 0.0

    def utility(self, intent: Intent, product: Product, day: int) -> float:
        if product.category not in intent.categories:
            return 0.0
        # Outside the sale a discount rule has nothing to compare and is left out, so a budget
        # intent's utilities are on the same scale before and during the festival.
        rules = [r for r in intent.prefer if r.attr != "discount_percent" or self.calendar.festival_active(day)]
        total_weight = sum(r.weight for r in rules if r.weight > 0) or 1.0
        raw = sum(r.weight * self._score(r, product, intent.categories, day) for r in rules) / total_weight
        u = min(max(raw, 0.0), 1.0)
        if any(self._score(r, product, intent.categories, day) < 1.0 for r in intent.require):
            u *= intent.require_factor
        return u

    def utilities(self, intent: Intent, day: int) -> dict[str, float]:
        """SKU -> utility for every product available on `day` (cached per intent and day)."""
        key = (intent.id, day)
        if key not in self._cache:
            self._cache[key] = {p.sku: self.utility(intent, p, day) for p in self.calendar.catalog_on(day)}
        return self._cache[key]

    def ideal_ranking(self, intent: Intent, day: int, k: int | None = None) -> list[str]:
        """Available SKUs sorted by utility (ties by catalog order): the oracle's list."""
        utils = self.utilities(intent, day)
        order = sorted(utils, key=lambda s: -utils[s])  # sorted is stable: ties keep catalog order
        return order[:k] if k is not None else order
