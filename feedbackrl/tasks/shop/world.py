"""The shop world: catalog, intents, calendar and hidden utilities, loaded together.

Everything that simulates or ranks takes a `ShopWorld` so that one set of data files and
one calendar are shared by the baselines, the simulated shoppers, the reward and the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feedbackrl.commands.errors import UserError
from feedbackrl.tasks.shop.catalog import Catalog, Product, load_catalog
from feedbackrl.tasks.shop.drift import ShopCalendar
from feedbackrl.tasks.shop.intents import Intent, load_intents, normalize_query
from feedbackrl.tasks.shop.preferences import UtilityModel


@dataclass
class ShopWorld:
    catalog: Catalog
    intents: list[Intent]
    calendar: ShopCalendar
    utility_model: UtilityModel

    def __post_init__(self) -> None:
        self.intent_by_id = {it.id: it for it in self.intents}
        self._intent_by_query = {normalize_query(p): it for it in self.intents for p in it.phrasings}

    def intent_for_query(self, query: str) -> Intent:
        """The intent a known phrasing belongs to; a `UserError` for text no intent has."""
        it = self._intent_by_query.get(normalize_query(query))
        if it is None:
            raise UserError(f"shop: query {query!r} is not a phrasing of any intent")
        return it

    def catalog_on(self, day: int) -> list[Product]:
        return self.calendar.catalog_on(day)

    def candidates(self, segment: str, day: int) -> list[Product]:
        """What a search in `segment` can return on `day`."""
        return [p for p in self.calendar.catalog_on(day) if self.catalog.segment_of(p) == segment]

    def utilities(self, intent: Intent, day: int) -> dict[str, float]:
        return self.utility_model.utilities(intent, day)

    def price_on(self, product: Product, day: int) -> float:
        return self.calendar.price_on(product, day)


def load_shop_world(
    catalog_path: str | Path | None = None,
    intents_path: str | Path | None = None,
    festival_start_day: int | None = None,
) -> ShopWorld:
    """Load the catalog and intents (bundled data for empty paths) and build the world."""
    catalog = load_catalog(catalog_path)
    intents = load_intents(catalog, intents_path)
    calendar = ShopCalendar(catalog, festival_start_day)
    return ShopWorld(catalog, intents, calendar, UtilityModel(catalog, calendar))
