"""Simulated sessions as the store's interaction records, for offline learning and OPE.

Day d of the simulation is the calendar day `START + d`; sessions of a day are spread one
second apart. `position_propensities` in the store schema are item-position *marginals*, so
they are written only when the ranker recorded marginals (deterministic rankers: 1, the
Plackett-Luce logger: Monte Carlo with `marginal_samples` > 0); the list propensity is the
product of the Plackett-Luce step probabilities.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

from feedbackrl.store.schema import Interaction
from feedbackrl.tasks.shop.traffic import SessionRecord

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def session_interactions(sessions: Iterable[SessionRecord], prefix: str = "shop") -> Iterator[Interaction]:
    per_day: dict[int, int] = {}
    for s in sessions:
        n = per_day.get(s.day, 0)
        per_day[s.day] = n + 1
        steps = s.position_propensities
        log_p = sum(math.log(p) for p in steps) if steps and all(p > 0 for p in steps) else None
        yield Interaction(
            impression_id=f"{prefix}-d{s.day}-{n:06d}",
            items=list(s.skus),
            clicks=list(s.clicks),
            timestamp=START + timedelta(days=s.day, seconds=n),
            query=s.query,
            segment=s.segment,
            user_features={"day": s.day},
            position_propensities=list(s.marginal_propensities) if s.marginal_propensities else None,
            list_propensity=s.propensity,
            list_log_propensity=log_p,
            policy_version=s.policy,
            add_to_carts=list(s.carts),
            purchases=list(s.purchases),
        )
