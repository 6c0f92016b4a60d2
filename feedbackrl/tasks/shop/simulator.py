"""Simulated shoppers: what a shopper does with a ranked list, given hidden utilities.

Position-based model (Richardson et al. 2007; Chuklin et al. 2015, ch. 3): the shopper
examines position j with probability e_j (default 1 / (1 + j)^0.8, j from 0) independently
of the rest, and clicks an examined item with

    P(click | examined, u) = sigmoid(click_slope * (u - click_midpoint))

so a wrong item (u = 0) is almost never clicked and a perfect one (u = 1) almost always.
After a click: P(add to cart) = cart_given_click * u, then P(purchase | cart) =
purchase_given_cart * u; both rise with utility. Revenue is the day's price of what was bought.

Cascade model (Craswell et al. 2008, with abandonment): the shopper reads top-down, clicks as
above, and after a click stops, satisfied, with probability u; after passing an item without a
click, reads on with probability `cascade_patience`.

Noise: a `bot_rate` share of sessions are bots that click each position with `bot_click_prob`
regardless of utility and never buy; `misclick_prob` is the chance that an examined item the
shopper did not want is clicked anyway (a mis-click never leads to a cart).

Every draw comes from the numpy Generator passed in, so a seed reproduces a session exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass
class ShopperConfig:
    model: Literal["position", "cascade"] = "position"
    examination: list[float] = field(default_factory=list)  # per position; empty = 1/(1+j)^decay
    examination_decay: float = 0.8
    click_slope: float = 10.0  # steepness of the utility -> click sigmoid
    click_midpoint: float = 0.6  # utility at which an examined item is clicked half the time
    cart_given_click: float = 0.6  # P(cart | click) = cart_given_click * utility
    purchase_given_cart: float = 0.6  # P(purchase | cart) = purchase_given_cart * utility
    cascade_patience: float = 0.85  # cascade: P(read on | no click)
    bot_rate: float = 0.0  # share of sessions that are bots
    bot_click_prob: float = 0.3  # a bot's click probability at every position
    misclick_prob: float = 0.0  # P(click | examined, not wanted)

    def validate(self) -> None:
        for name in ("cart_given_click", "purchase_given_cart", "cascade_patience", "bot_rate",
                     "bot_click_prob", "misclick_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be within [0, 1]")
        if any(not 0.0 <= e <= 1.0 for e in self.examination):
            raise ValueError("examination: every probability must be within [0, 1]")
        if self.examination_decay < 0:
            raise ValueError("examination_decay: must be >= 0")


@dataclass
class SessionEvents:
    """n sessions of one list of K items: 0/1 events per session and position."""

    clicks: np.ndarray  # [n, K] bool
    carts: np.ndarray  # [n, K] bool
    purchases: np.ndarray  # [n, K] bool
    revenue: np.ndarray  # [n]


@dataclass
class ExpectedEvents:
    """Expected events per position of one list, averaged over shoppers (and bots)."""

    clicks: np.ndarray  # [K]
    carts: np.ndarray  # [K]
    purchases: np.ndarray  # [K]
    revenue: float


class ShopperSimulator:
    def __init__(self, config: ShopperConfig | None = None):
        self.config = config or ShopperConfig()
        self.config.validate()

    def examination(self, k: int) -> np.ndarray:
        """e_j for positions 0..k-1; a configured list shorter than k is extended with its last value."""
        cfg = self.config
        if cfg.examination:
            e = list(cfg.examination[:k]) + [cfg.examination[-1]] * max(0, k - len(cfg.examination))
            return np.asarray(e, dtype=np.float64)
        return 1.0 / (1.0 + np.arange(k, dtype=np.float64)) ** cfg.examination_decay

    def click_probability(self, utility: np.ndarray) -> np.ndarray:
        cfg = self.config
        return 1.0 / (1.0 + np.exp(-cfg.click_slope * (np.asarray(utility, dtype=np.float64) - cfg.click_midpoint)))

    def simulate(self, utilities, prices, n_sessions: int, rng: np.random.Generator) -> SessionEvents:
        """Draw `n_sessions` independent shoppers facing the list with these utilities and prices."""
        cfg = self.config
        u = np.clip(np.asarray(utilities, dtype=np.float64), 0.0, 1.0)
        price = np.asarray(prices, dtype=np.float64)
        n, k = n_sessions, len(u)
        p_click = self.click_probability(u)
        # Every random number is drawn up front in a fixed order, so both models consume the
        # generator identically and a seed gives the same shoppers whatever the list.
        r_click, r_mis, r_cart, r_buy, r_stop, r_sat = (rng.random((n, k)) for _ in range(6))
        r_bot_session, r_bot_click = rng.random(n), rng.random((n, k))
        want = r_click < p_click
        if cfg.model == "position":
            examined = r_stop < self.examination(k)
        else:
            examined = np.zeros((n, k), dtype=bool)
            reading = np.ones(n, dtype=bool)
            for j in range(k):
                examined[:, j] = reading
                # satisfied after a wanted click with probability u; otherwise read on with patience
                satisfied = want[:, j] & (r_sat[:, j] < u[j])
                read_on = np.where(want[:, j], ~satisfied, r_stop[:, j] < cfg.cascade_patience)
                reading = reading & read_on
        genuine = examined & want
        misclick = examined & ~want & (r_mis < cfg.misclick_prob)
        carts = genuine & (r_cart < cfg.cart_given_click * u)
        purchases = carts & (r_buy < cfg.purchase_given_cart * u)
        clicks = genuine | misclick
        bots = r_bot_session < cfg.bot_rate
        if bots.any():
            clicks = np.where(bots[:, None], r_bot_click < cfg.bot_click_prob, clicks)
            carts = carts & ~bots[:, None]
            purchases = purchases & ~bots[:, None]
        revenue = (purchases * price[None, :]).sum(axis=1) if k else np.zeros(n)
        return SessionEvents(clicks, carts, purchases, revenue)

    def expected(self, utilities, prices) -> ExpectedEvents:
        """Closed-form expectation of `simulate` per position (no sampling noise)."""
        cfg = self.config
        u = np.clip(np.asarray(utilities, dtype=np.float64), 0.0, 1.0)
        price = np.asarray(prices, dtype=np.float64)
        k = len(u)
        p = self.click_probability(u)
        if cfg.model == "position":
            reach = self.examination(k)
        else:
            reach = np.ones(k)
            for j in range(1, k):
                read_on = p[j - 1] * (1.0 - u[j - 1]) + (1.0 - p[j - 1]) * cfg.cascade_patience
                reach[j] = reach[j - 1] * read_on
        human = 1.0 - cfg.bot_rate
        clicks = human * reach * (p + (1.0 - p) * cfg.misclick_prob) + cfg.bot_rate * cfg.bot_click_prob
        carts = human * reach * p * cfg.cart_given_click * u
        purchases = carts * cfg.purchase_given_cart * u
        return ExpectedEvents(clicks, carts, purchases, float((purchases * price).sum()))
