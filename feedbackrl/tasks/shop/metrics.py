"""Shop metrics over simulated sessions, overall, per segment, per intent and per day.

Definitions (a session is one search: one list shown to one shopper):
- `ctr`: clicks per session (mean number of clicks a result list receives; up to k);
- `sessions_with_click`: share of sessions with at least one click;
- `add_to_cart_rate`: add-to-carts per session;
- `conversion`: share of sessions with at least one purchase;
- `revenue_per_session`: mean revenue (day's prices) per session;
- `ndcg@5`: nDCG@5 of the shown list with the hidden utilities as graded relevance (gain
  2^u - 1, log2 discount; the ideal is the best 5 available that day). An evaluation metric
  only: a policy never sees utilities.
- `days_to_top3`: for each launched product and each intent whose oracle top 3 contains it on
  launch day, the number of days from launch until the product is in the top 3 shown in at
  least half of that intent's sessions of the day; None if it never gets there.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable, Mapping, Sequence

from feedbackrl.rewards.ranking import ndcg_at_k

METRIC_NAMES = ("ctr", "sessions_with_click", "add_to_cart_rate", "conversion", "revenue_per_session", "ndcg@5")


def list_ndcg(utilities: Mapping[str, float], shown: Sequence[str], k: int = 5) -> float:
    """nDCG@k of `shown` against the utilities of every available product."""
    return ndcg_at_k(list(shown), utilities, k)


def summarize(sessions: Iterable) -> dict[str, float]:
    """The metrics above over sessions with clicks, carts, purchases, revenue and ndcg5."""
    n = clicks = click_sessions = carts = buy_sessions = revenue = ndcg = 0.0
    for s in sessions:
        n += 1
        c = sum(map(bool, s.clicks))
        clicks += c
        click_sessions += c > 0
        carts += sum(map(bool, s.carts))
        buy_sessions += any(s.purchases)
        revenue += s.revenue
        ndcg += s.ndcg5
    if n == 0:
        return {name: 0.0 for name in METRIC_NAMES} | {"sessions": 0}
    return {
        "ctr": clicks / n,
        "sessions_with_click": click_sessions / n,
        "add_to_cart_rate": carts / n,
        "conversion": buy_sessions / n,
        "revenue_per_session": revenue / n,
        "ndcg@5": ndcg / n,
        "sessions": int(n),
    }


def summarize_by(sessions: Iterable, key: Callable) -> dict[str, dict[str, float]]:
    groups: dict[str, list] = defaultdict(list)
    for s in sessions:
        groups[str(key(s))].append(s)
    return {name: summarize(group) for name, group in sorted(groups.items())}


def days_to_top3(sessions: Sequence, world) -> dict[str, dict[str, int | None]]:
    """sku of each launched product -> {intent id: days from launch to top 3, or None}."""
    by_day_intent: dict[tuple[int, str], list] = defaultdict(list)
    for s in sessions:
        by_day_intent[(s.day, s.intent_id)].append(s)
    days = sorted({s.day for s in sessions})
    out: dict[str, dict[str, int | None]] = {}
    for product in world.calendar.launches():
        launch = product.launch_day
        targets = [it for it in world.intents
                   if product.sku in world.utility_model.ideal_ranking(it, launch, 3)]
        result: dict[str, int | None] = {}
        for it in targets:
            result[it.id] = None
            for day in (d for d in days if d >= launch):
                today = by_day_intent.get((day, it.id), [])
                in_top3 = sum(product.sku in s.skus[:3] for s in today)
                if today and in_top3 >= len(today) / 2:
                    result[it.id] = day - launch
                    break
        out[product.sku] = result
    return out
