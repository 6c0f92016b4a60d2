"""The reward model behind the direct method: a position-based click model fitted on the logs.

P(click | query q, item i, position k) = examination(k) * attractiveness(q, i)
(the position-based model, Richardson et al. 2007; Chuklin et al. 2015, ch. 3). It is the
same structure the shop simulator and most real search logs follow, and it is what lets
the direct method say something about an item the target shows at a position where the
logger rarely put it: examination is shared by every item, attractiveness by every position.

Fitting alternates the two closed-form updates
    attractiveness(q,i) = (clicks(q,i) + m * a0) / (sum over showings of examination(k) + m)
    examination(k)      = clicks at k / sum over showings at k of attractiveness(q,i)
which are the stationary conditions of a Poisson likelihood of clicks with those means
(a close, stable stand-in for the Bernoulli likelihood at click rates well below 1).
`m` (prior_strength) pulls rarely shown pairs towards a0: first towards the item's
attractiveness pooled over queries, then towards the global rate. examination(0) is 1 by
convention (only the product is identified).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PositionBasedClickModel:
    prior_strength: float = 10.0
    iterations: int = 30
    examination: np.ndarray = field(default_factory=lambda: np.ones(1))
    pair_attractiveness: dict[tuple[str, str], float] = field(default_factory=dict)
    item_attractiveness: dict[str, float] = field(default_factory=dict)
    global_attractiveness: float = 0.0

    def fit(self, query_keys: list[str], items: list[list[str]], clicks: np.ndarray) -> "PositionBasedClickModel":
        """query_keys: [N]; items: [N][K] SKUs; clicks: [N, K] 0/1."""
        clicks = np.asarray(clicks, dtype=np.float64)
        n, k = clicks.shape
        pair_index: dict[tuple[str, str], int] = {}
        item_index: dict[str, int] = {}
        pair_ids = np.empty((n, k), dtype=np.int64)
        item_ids = np.empty((n, k), dtype=np.int64)
        for row, (query, shown) in enumerate(zip(query_keys, items)):
            for pos, sku in enumerate(shown):
                pair_ids[row, pos] = pair_index.setdefault((query, sku), len(pair_index))
                item_ids[row, pos] = item_index.setdefault(sku, len(item_index))
        positions = np.broadcast_to(np.arange(k), (n, k))
        flat_pairs, flat_items, flat_pos, flat_clicks = (
            pair_ids.ravel(), item_ids.ravel(), positions.ravel(), clicks.ravel()
        )
        pair_clicks = np.bincount(flat_pairs, weights=flat_clicks, minlength=len(pair_index))
        item_clicks = np.bincount(flat_items, weights=flat_clicks, minlength=len(item_index))
        position_clicks = np.bincount(flat_pos, weights=flat_clicks, minlength=k)
        pair_item = np.empty(len(pair_index), dtype=np.int64)
        pair_item[flat_pairs] = flat_items
        m = self.prior_strength

        def attractiveness_given(examination: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
            exposure = examination[flat_pos]  # how much each showing was looked at
            global_rate = flat_clicks.sum() / max(exposure.sum(), 1e-12)
            item_exposure = np.bincount(flat_items, weights=exposure, minlength=len(item_index))
            item_attr = (item_clicks + m * global_rate) / (item_exposure + m)
            pair_exposure = np.bincount(flat_pairs, weights=exposure, minlength=len(pair_index))
            pair_attr = (pair_clicks + m * item_attr[pair_item]) / (pair_exposure + m)
            return float(global_rate), item_attr, pair_attr

        examination = np.ones(k)
        for _ in range(self.iterations):
            _, _, pair_attr = attractiveness_given(examination)
            attr_at_position = np.bincount(flat_pos, weights=pair_attr[flat_pairs], minlength=k)
            examination = position_clicks / np.maximum(attr_at_position, 1e-12)
            if examination[0] > 0:
                examination = examination / examination[0]
        global_rate, item_attr, pair_attr = attractiveness_given(examination)

        self.examination = examination
        self.global_attractiveness = float(global_rate)
        self.item_attractiveness = {sku: float(item_attr[i]) for sku, i in item_index.items()}
        self.pair_attractiveness = {pair: float(pair_attr[i]) for pair, i in pair_index.items()}
        return self

    def attractiveness(self, query: str, item: str) -> float:
        found = self.pair_attractiveness.get((query, item))
        if found is not None:
            return found
        return self.item_attractiveness.get(item, self.global_attractiveness)

    def click_probability(self, query: str, item: str, position: int) -> float:
        if position >= len(self.examination):
            return 0.0
        return float(min(1.0, self.examination[position] * self.attractiveness(query, item)))
