"""The engagement reward: simulated shoppers react to the list a policy wrote.

For a completion parsed into valid items i_1..i_m (m <= k) for the intent in the sample's
reference, `shoppers_per_sample` simulated shoppers see the list and

    engagement = mean over shoppers of  click_weight * clicks + cart_weight * add_to_carts
                                        + purchase_weight * purchases

(`mode: expected` uses the closed-form expectation instead of sampled shoppers: no noise,
the same mean). Validity gates it:

    score = engagement - invalid_penalty * (unknown + unavailable + repeated items)
    score = -empty_penalty                       if no valid item at all
    score = -invalid_penalty * mistakes          if `gate_invalid` and there is any mistake

Items past the first k are dropped and reported, not penalised. `details` name every invalid
item and the events at each position, for audit. The hidden utility and nDCG are never part
of the score: they are evaluation metrics only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample
from feedbackrl.tasks.shop.simulator import ShopperConfig, ShopperSimulator
from feedbackrl.tasks.shop.text_format import parse_ranking
from feedbackrl.tasks.shop.world import ShopWorld


@dataclass(frozen=True)
class ShopQuery:
    """What a shop prompt's reward needs: the hidden intent, the text typed, the segment, the day."""

    intent_id: str
    query: str
    segment: str
    day: int


@dataclass
class EngagementRewardConfig:
    click_weight: float = 1.0
    cart_weight: float = 1.0
    purchase_weight: float = 2.0
    shoppers_per_sample: int = 8  # sampled shoppers averaged per completion (variance / cost)
    mode: Literal["sampled", "expected"] = "sampled"
    invalid_penalty: float = 0.5  # per unknown, not-yet-launched or repeated item
    empty_penalty: float = 1.0  # no valid item at all
    gate_invalid: bool = False  # any mistake -> no engagement credit, only the penalty
    k: int = 5  # list length shown to shoppers
    seed: int = 0
    shoppers: ShopperConfig = field(default_factory=ShopperConfig)

    def validate(self) -> None:
        if self.shoppers_per_sample < 1:
            raise ValueError("shoppers_per_sample: must be >= 1")
        if self.k < 1:
            raise ValueError("k: must be >= 1")
        if self.invalid_penalty < 0 or self.empty_penalty < 0:
            raise ValueError("invalid_penalty: penalties must be >= 0")


def item_spans(completion: str, items: Sequence[str], rewards: Sequence[float]) -> list[list]:
    """[[start, end, reward], ...]: where each listed SKU stands in `completion` (found in order,
    case-insensitively) and what it earned; an item not found verbatim gets no span."""
    lower, cursor, out = completion.lower(), 0, []
    for sku, r in zip(items, rewards):
        at = lower.find(sku.lower(), cursor)
        if at < 0:
            continue
        out.append([at, at + len(sku), round(float(r), 6)])
        cursor = at + len(sku)
    return out


class EngagementReward:
    name = "shop_engagement"

    def __init__(self, world: ShopWorld, config: EngagementRewardConfig | None = None):
        self.world = world
        self.config = config or EngagementRewardConfig()
        self.config.validate()
        self.simulator = ShopperSimulator(self.config.shoppers)
        # One generator for the reward's lifetime: a seed and a call order reproduce every score.
        self.rng = np.random.default_rng(self.config.seed)

    def score_list(self, query: ShopQuery, completion: str) -> RewardResult:
        cfg = self.config
        world = self.world
        parsed = parse_ranking(completion, world.catalog, world.calendar, query.day, cfg.k)
        details: dict = {
            "items": parsed.items, "unknown": parsed.unknown, "unavailable": parsed.unavailable,
            "repeated": parsed.repeated, "overflow": parsed.overflow, "valid": parsed.valid,
        }
        mistakes = parsed.invalid_count
        if not parsed.items:
            details["rule"] = "empty"
            return RewardResult(-cfg.empty_penalty - cfg.invalid_penalty * mistakes, details)
        intent = world.intent_by_id[query.intent_id]
        utils = world.utilities(intent, query.day)
        u = [utils[s] for s in parsed.items]
        prices = [world.price_on(world.catalog.by_sku[s], query.day) for s in parsed.items]
        if cfg.mode == "expected":
            ev = self.simulator.expected(u, prices)
            clicks, carts, buys = ev.clicks, ev.carts, ev.purchases
        else:
            sessions = self.simulator.simulate(u, prices, cfg.shoppers_per_sample, self.rng)
            clicks, carts, buys = (a.mean(axis=0) for a in (sessions.clicks, sessions.carts, sessions.purchases))
        engagement = float(cfg.click_weight * clicks.sum() + cfg.cart_weight * carts.sum()
                           + cfg.purchase_weight * buys.sum())
        details.update({
            "clicks": [round(float(x), 4) for x in clicks], "add_to_carts": [round(float(x), 4) for x in carts],
            "purchases": [round(float(x), 4) for x in buys], "engagement": engagement,
        })
        # which characters earned what: each item's engagement at its position (credit.py)
        per_item = cfg.click_weight * clicks + cfg.cart_weight * carts + cfg.purchase_weight * buys
        details["spans"] = item_spans(completion, parsed.items, [float(x) for x in per_item])
        penalty = cfg.invalid_penalty * mistakes
        if mistakes and cfg.gate_invalid:
            details.pop("spans")
            details["rule"] = "gated"
            return RewardResult(-penalty, details)
        details["rule"] = "penalised" if mistakes else "ok"
        return RewardResult(engagement - penalty, details)

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        out = []
        for s in samples:
            if not isinstance(s.reference, ShopQuery):
                out.append(RewardResult(0.0, {}, f"shop reward needs a ShopQuery reference, got {type(s.reference).__name__}"))
                continue
            out.append(self.score_list(s.reference, s.completion))
        return out
