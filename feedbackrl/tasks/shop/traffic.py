"""Days of simulated search traffic against any ranker.

Each day, `sessions_per_day` shoppers arrive; each draws an intent (in proportion to its
`traffic` weight) and one of its phrasings (all of them: real traffic does not know which
phrasings a model was trained on), searches in the intent's segment, is shown the ranker's
top k, and acts as `ShopperSimulator` says. After the day the ranker's `observe_day` (if it
has one) sees the day's sessions. Everything is drawn from one seeded numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from feedbackrl.tasks.shop.baselines import Ranker
from feedbackrl.tasks.shop.metrics import list_ndcg
from feedbackrl.tasks.shop.simulator import ShopperConfig, ShopperSimulator
from feedbackrl.tasks.shop.world import ShopWorld


@dataclass
class TrafficConfig:
    days: int = 7
    start_day: int = 0
    sessions_per_day: int = 300
    k: int = 5  # items shown per search
    seed: int = 0
    shoppers: ShopperConfig = field(default_factory=ShopperConfig)

    def validate(self) -> None:
        if self.days < 1:
            raise ValueError("days: must be >= 1")
        if self.sessions_per_day < 1:
            raise ValueError("sessions_per_day: must be >= 1")
        if self.k < 1:
            raise ValueError("k: must be >= 1")
        if self.start_day < 0:
            raise ValueError("start_day: must be >= 0")


@dataclass
class SessionRecord:
    """One search: what was shown, with what probability, and what the shopper did."""

    day: int
    intent_id: str
    segment: str
    query: str
    skus: list[str]
    clicks: list[bool]
    carts: list[bool]
    purchases: list[bool]
    revenue: float
    utilities: list[float]  # hidden utility of each shown item (for analysis only)
    ndcg5: float
    propensity: float | None = 1.0
    position_propensities: list[float] | None = None
    marginal_propensities: list[float] | None = None
    policy: str = ""


def simulate_session(world: ShopWorld, simulator: ShopperSimulator, ranker: Ranker, intent, query: str,
                     day: int, k: int, rng: np.random.Generator) -> SessionRecord:
    ranked = ranker.rank(query, intent.segment, day, k, rng)
    utils = world.utilities(intent, day)
    by_sku = world.catalog.by_sku
    shown = [s for s in ranked.skus if s in utils][:k]  # a ranker may only show what exists today
    u = [utils[s] for s in shown]
    prices = [world.price_on(by_sku[s], day) for s in shown]
    ev = simulator.simulate(u, prices, 1, rng)
    return SessionRecord(
        day=day, intent_id=intent.id, segment=intent.segment, query=query, skus=shown,
        clicks=ev.clicks[0].tolist(), carts=ev.carts[0].tolist(), purchases=ev.purchases[0].tolist(),
        revenue=float(ev.revenue[0]), utilities=u, ndcg5=list_ndcg(utils, shown, 5),
        propensity=ranked.propensity, position_propensities=ranked.position_propensities,
        marginal_propensities=ranked.marginal_propensities, policy=getattr(ranker, "name", type(ranker).__name__),
    )


def simulate_traffic(ranker: Ranker, world: ShopWorld, config: TrafficConfig | None = None,
                     rng: np.random.Generator | None = None) -> list[SessionRecord]:
    """`config.days` days of sessions against `ranker`; records in the order they happened."""
    cfg = config or TrafficConfig()
    cfg.validate()
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    simulator = ShopperSimulator(cfg.shoppers)
    weights = np.asarray([it.traffic for it in world.intents], dtype=np.float64)
    if weights.sum() <= 0:
        raise ValueError("every intent has traffic 0")
    weights = weights / weights.sum()
    records: list[SessionRecord] = []
    for day in range(cfg.start_day, cfg.start_day + cfg.days):
        today = []
        for _ in range(cfg.sessions_per_day):
            intent = world.intents[int(rng.choice(len(world.intents), p=weights))]
            query = intent.phrasings[int(rng.integers(len(intent.phrasings)))]
            today.append(simulate_session(world, simulator, ranker, intent, query, day, cfg.k, rng))
        observe = getattr(ranker, "observe_day", None)
        if callable(observe):
            observe(day, today)
        records.extend(today)
    return records


@dataclass
class ShopSimulationConfig:
    """What `feedbackrl shop simulate` runs: data files, the traffic, and the baselines' knobs."""

    catalog: str = ""  # catalog JSON; empty = bundled data/shop/catalog.json
    intents: str = ""  # intents JSON; empty = bundled data/shop/intents.json
    festival_start_day: int | None = None  # move the festival sale (same length)
    # Popularity counts start from this many days of logging-policy traffic before day 0.
    popularity_history_days: int = 3
    logging_temperature: float = 0.5  # temperature of the Plackett-Luce logger making that history
    marginal_samples: int = 0  # Monte Carlo draws for pl-bm25 item-position marginals (for logs)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)

    def validate(self) -> None:
        if self.popularity_history_days < 0:
            raise ValueError("popularity_history_days: must be >= 0")
        if self.logging_temperature <= 0:
            raise ValueError("logging_temperature: must be > 0")
        if self.marginal_samples < 0:
            raise ValueError("marginal_samples: must be >= 0")
