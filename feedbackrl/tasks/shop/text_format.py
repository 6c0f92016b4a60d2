"""The text interface of the policy: the prompt it reads and how its ranked list is read back.

Prompt: `search: best phone for gaming [mobile] ->` (short: the tiny model's context is small).
Completion: SKUs in rank order, ` SM-S928-256 SM-S918-256 ...`. The parser is tolerant: items
may be separated by spaces, commas, semicolons, '|' or new lines, numbered ("1." "2)" "#3"),
bulleted, and in any case. Everything it finds is sorted into
- `items`: catalog SKUs available on the day, first occurrence only, in order (at most k kept);
- `unknown`: words that are no SKU of the catalog;
- `unavailable`: real SKUs not launched yet on the day;
- `repeated`: SKUs already listed earlier;
- `overflow`: valid items beyond the first k (dropped, not penalised).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from feedbackrl.tasks.shop.catalog import Catalog
from feedbackrl.tasks.shop.drift import ShopCalendar

_SEPARATORS = re.compile(r"[\s,;|]+")
_NUMBERING = re.compile(r"^(?:#?\d+[.):\]]?|[-*•·>]+)$")  # a token that is only a list marker
_NUMBER_PREFIX = re.compile(r"^(?:#?\d+[.):\]]|[-*•·]+)")  # "1.SM-S918-256" -> "SM-S918-256"
_EDGE_PUNCTUATION = "\"'`()[]{}<>.:!?*"


def render_prompt(query: str, segment: str) -> str:
    return f"search: {' '.join(query.split())} [{segment}] ->"


def render_completion(skus: Sequence[str]) -> str:
    """The completion a policy should write for this list (leading space: SKUs are ' SKU' tokens)."""
    return "".join(f" {s}" for s in skus)


@dataclass
class ParsedRanking:
    items: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)

    @property
    def invalid_count(self) -> int:
        """Mistakes the reward penalises: unknown, unavailable and repeated items."""
        return len(self.unknown) + len(self.unavailable) + len(self.repeated)

    @property
    def valid(self) -> bool:
        """A non-empty list with no unknown, unavailable or repeated item."""
        return bool(self.items) and self.invalid_count == 0


def parse_ranking(text: str, catalog: Catalog, calendar: ShopCalendar, day: int, k: int) -> ParsedRanking:
    out = ParsedRanking()
    seen: set[str] = set()
    for raw in _SEPARATORS.split(text):
        word = raw.strip(_EDGE_PUNCTUATION)
        if not word:
            continue
        product = catalog.lookup(word)
        if product is None and _NUMBERING.match(word):
            continue
        if product is None:
            stripped = _NUMBER_PREFIX.sub("", word).strip(_EDGE_PUNCTUATION)
            product = catalog.lookup(stripped) if stripped != word else None
        if product is None:
            out.unknown.append(word)
        elif product.sku in seen:
            out.repeated.append(product.sku)
        elif not calendar.is_available(product, day):
            out.unavailable.append(product.sku)
            seen.add(product.sku)
        elif len(out.items) >= k:
            out.overflow.append(product.sku)
            seen.add(product.sku)
        else:
            out.items.append(product.sku)
            seen.add(product.sku)
    return out
