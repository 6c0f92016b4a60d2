"""Drift on a simulated calendar: what can be bought on day d, and at what price.

Two kinds of change happen over the days, both read from the catalog data:
- launches: a product with `launch_day` N > 0 does not exist before day N (no clicks, no
  history), then is available and, for the intents it suits, very attractive;
- the festival sale: on days [start_day, end_day) every product with a
  `festival_discount_percent` sells at that discount. Its price falls, and its derived
  `discount_percent` attribute becomes non-zero, so intents that weigh discounts (the budget
  ones) shift their utility towards the discounted products.

`festival_start_day` moves the sale (keeping its length) without editing the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from feedbackrl.tasks.shop.catalog import Catalog, Festival, Product


@dataclass(frozen=True)
class DriftEvent:
    day: int
    kind: str  # "launch" | "festival_start" | "festival_end"
    description: str


class ShopCalendar:
    def __init__(self, catalog: Catalog, festival_start_day: int | None = None):
        self.catalog = catalog
        festival = catalog.festival
        if festival is not None and festival_start_day is not None:
            length = festival.end_day - festival.start_day
            festival = Festival(festival.name, festival_start_day, festival_start_day + length)
        self.festival = festival
        self._available: dict[int, list[Product]] = {}

    def is_available(self, product: Product, day: int) -> bool:
        return product.launch_day <= day

    def catalog_on(self, day: int) -> list[Product]:
        """Products that can be shown and bought on `day`, in catalog order."""
        if day not in self._available:
            self._available[day] = [p for p in self.catalog.products if self.is_available(p, day)]
        return self._available[day]

    def festival_active(self, day: int) -> bool:
        f = self.festival
        return f is not None and f.start_day <= day < f.end_day

    def discount_on(self, product: Product, day: int) -> float:
        """The discount in percent that applies to `product` on `day` (0 outside the sale)."""
        return product.festival_discount_percent if self.festival_active(day) else 0.0

    def price_on(self, product: Product, day: int) -> float:
        return product.list_price * (1.0 - self.discount_on(product, day) / 100.0)

    def launches(self) -> list[Product]:
        """Products that arrive after day 0."""
        return [p for p in self.catalog.products if p.launch_day > 0]

    def events(self) -> list[DriftEvent]:
        out = [DriftEvent(p.launch_day, "launch", f"{p.title} ({p.sku}) launches") for p in self.launches()]
        if self.festival is not None:
            f = self.festival
            out.append(DriftEvent(f.start_day, "festival_start", f"{f.name} starts"))
            out.append(DriftEvent(f.end_day, "festival_end", f"{f.name} ends"))
        return sorted(out, key=lambda e: (e.day, e.kind))

    def events_on(self, day: int) -> list[DriftEvent]:
        return [e for e in self.events() if e.day == day]
