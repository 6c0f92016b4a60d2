"""Constrained decoding: let the policy write only catalog SKUs available today, without repeats,
and end after k of them.

`CatalogConstraint` is the `constraint` callable of `Policy.generate`:
`(row, generated_so_far) -> allowed next token ids` (None = no constraint). It relies on each
SKU being one whole token ` SKU` (leading space), which is how `train_tokenizer` adds the
task's `extra_tokens()`. If any available SKU is not a single token, the constraint turns
itself off (`active` is False, every call returns None) rather than forbid a valid item.
Completions then read ` SKU1 SKU2 ... SKUk</s>`, exactly what `parse_ranking` expects.
"""

from __future__ import annotations

from typing import Sequence

from feedbackrl.tasks.shop.catalog import Catalog
from feedbackrl.tasks.shop.drift import ShopCalendar


def sku_token_ids(tokenizer, skus: Sequence[str]) -> dict[str, int] | None:
    """SKU -> id of its ' SKU' token, or None if some SKU is not a single token."""
    out = {}
    for sku in skus:
        ids = tokenizer(" " + sku, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            return None
        out[sku] = int(ids[0])
    return out


class CatalogConstraint:
    def __init__(self, tokenizer, catalog: Catalog, day: int, k: int, calendar: ShopCalendar | None = None,
                 segments: Sequence[str] | None = None):
        """`segments`, if given, holds the segment of each generation row and limits that row to
        its segment's products (rows are prompt-major: prompt i, sample j is row i*G + j)."""
        calendar = calendar or ShopCalendar(catalog)
        self.k = k
        self.eos_id = tokenizer.eos_token_id
        available = calendar.catalog_on(day)
        ids = sku_token_ids(tokenizer, [p.sku for p in available])
        self.active = ids is not None
        self._all: list[int] = sorted(ids.values()) if ids else []
        self._by_segment: dict[str, list[int]] = {}
        if ids:
            for p in available:
                self._by_segment.setdefault(catalog.segment_of(p), []).append(ids[p.sku])
        self._item_ids = set(self._all)
        self.segments = list(segments) if segments is not None else None

    def __call__(self, row: int, generated_so_far: Sequence[int]) -> list[int] | None:
        if not self.active:
            return None
        used = {t for t in generated_so_far if t in self._item_ids}
        if len(used) >= self.k:
            return [self.eos_id]
        pool = self._all if self.segments is None else self._by_segment.get(self.segments[row], [])
        allowed = [t for t in pool if t not in used]
        # Fewer candidates than k: end the list when they run out.
        return allowed or [self.eos_id]
