"""Rankers that need no learning: the "before" search, its randomised logging twin, popularity
and the oracle ceiling. Every ranker has the same interface,

    rank(query, segment, day, k, rng) -> RankedList

and anything else with that method (a trained policy wrapped to emit SKUs, say) plugs into
`simulate_traffic` and `feedbackrl shop simulate` the same way. A ranker may also define
`observe_day(day, sessions)`, called after each simulated day with that day's sessions
(popularity uses it to count clicks and purchases).

Candidates are the products of the query's segment available on the day.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from feedbackrl.tasks.shop.catalog import Product
from feedbackrl.tasks.shop.intents import normalize_query
from feedbackrl.tasks.shop.world import ShopWorld


@dataclass
class RankedList:
    skus: list[str]
    # Probability that the ranker shows exactly this ordered list (1 for a deterministic one;
    # None when unknown, e.g. a text generator).
    propensity: float | None = 1.0
    # P(item j at position j | items before it): the Plackett-Luce step probabilities; their
    # product is `propensity`.
    position_propensities: list[float] | None = None
    # P(item j at position j) summed over every list the ranker could draw (Monte Carlo for
    # Plackett-Luce when asked for); what position-based IPS needs.
    marginal_propensities: list[float] | None = None

    @property
    def log_propensity(self) -> float:
        if self.position_propensities:
            return float(sum(math.log(p) for p in self.position_propensities))
        if self.propensity is None:
            return float("nan")
        return math.log(self.propensity) if self.propensity > 0 else float("-inf")


def deterministic(skus: Sequence[str]) -> RankedList:
    ones = [1.0] * len(skus)
    return RankedList(list(skus), 1.0, ones, list(ones))


@runtime_checkable
class Ranker(Protocol):
    name: str

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator) -> RankedList: ...


class BM25Ranker:
    """Static lexical search over title + description (bm25s, English stop words, no stemming)."""

    name = "bm25"

    def __init__(self, world: ShopWorld):
        import bm25s

        self._bm25s = bm25s
        self.world = world
        self.products = world.catalog.products
        self._index_of = {p.sku: i for i, p in enumerate(self.products)}
        self.retriever = bm25s.BM25()
        corpus = bm25s.tokenize([p.text for p in self.products], show_progress=False)
        self.retriever.index(corpus, show_progress=False)
        self._scores: dict[str, np.ndarray] = {}

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every catalog product (catalog order) for `query`."""
        key = normalize_query(query)
        if key not in self._scores:
            tokens = self._bm25s.tokenize(key, return_ids=False, show_progress=False)[0]
            self._scores[key] = (np.asarray(self.retriever.get_scores(tokens), dtype=np.float64)
                                 if tokens else np.zeros(len(self.products)))
        return self._scores[key]

    def candidate_scores(self, query: str, segment: str, day: int) -> tuple[list[Product], np.ndarray]:
        cands = self.world.candidates(segment, day)
        all_scores = self.scores(query)
        return cands, np.asarray([all_scores[self._index_of[p.sku]] for p in cands])

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator | None = None) -> RankedList:
        cands, scores = self.candidate_scores(query, segment, day)
        order = np.argsort(-scores, kind="stable")[:k]  # ties keep catalog order
        return deterministic([cands[i].sku for i in order])


class PlackettLuceLogger:
    """The randomised logging policy: Plackett-Luce sampling over BM25 scores / temperature.

    Draws positions one at a time, each item with probability proportional to
    exp(score / temperature) among those not yet shown (Gumbel-top-k gives the same law in one
    sort). Records the probability of each step, their product (the list propensity) and,
    when `marginal_samples` > 0, Monte Carlo estimates of the item-position marginals.
    """

    def __init__(self, world: ShopWorld, temperature: float = 0.5, marginal_samples: int = 0,
                 bm25: BM25Ranker | None = None):
        if temperature <= 0:
            raise ValueError("temperature: must be > 0")
        self.bm25 = bm25 or BM25Ranker(world)
        self.temperature = temperature
        self.marginal_samples = marginal_samples
        self.name = f"pl-bm25:{temperature:g}"

    def logits(self, query: str, segment: str, day: int) -> tuple[list[Product], np.ndarray]:
        cands, scores = self.bm25.candidate_scores(query, segment, day)
        return cands, scores / self.temperature

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator) -> RankedList:
        cands, logits = self.logits(query, segment, day)
        k = min(k, len(cands))
        chosen = np.argsort(-(logits + rng.gumbel(size=len(logits))), kind="stable")[:k]
        step_probs = plackett_luce_step_probabilities(logits, chosen)
        marginals = None
        if self.marginal_samples > 0:
            marginals = plackett_luce_marginals(logits, chosen, self.marginal_samples, rng).tolist()
        return RankedList([cands[i].sku for i in chosen], float(np.prod(step_probs)), step_probs.tolist(), marginals)


def plackett_luce_step_probabilities(logits: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """p_j = exp(l_{c_j}) / sum over items not in c_1..c_{j-1} of exp(l): [len(chosen)]."""
    weights = np.exp(logits - logits.max())
    remaining = np.ones(len(logits), dtype=bool)
    out = np.empty(len(chosen))
    for j, c in enumerate(chosen):
        out[j] = weights[c] / weights[remaining].sum()
        remaining[c] = False
    return out


def plackett_luce_marginals(logits: np.ndarray, chosen: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Monte Carlo P(item chosen[j] at position j) from `samples` Gumbel-top-k draws: [len(chosen)].

    The list actually shown is itself a draw from the same law and is counted as one more
    sample, so an estimate is never 0 for an item that was shown (IPS would divide by it)."""
    k = len(chosen)
    draws = np.argsort(-(logits[None, :] + rng.gumbel(size=(samples, len(logits)))), axis=1, kind="stable")[:, :k]
    hits = (draws == np.asarray(chosen)[None, :]).sum(axis=0)
    return (hits + 1.0) / (samples + 1.0)


class OracleRanker:
    """Sorts candidates by the hidden utility of the query's intent: the ceiling, not a real system."""

    name = "oracle"

    def __init__(self, world: ShopWorld):
        self.world = world

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator | None = None) -> RankedList:
        intent = self.world.intent_for_query(query)
        utils = self.world.utilities(intent, day)
        cands = self.world.candidates(segment, day)
        order = sorted(range(len(cands)), key=lambda i: -utils[cands[i].sku])
        return deterministic([cands[i].sku for i in order[:k]])


class RandomRanker:
    """Uniformly random candidates: the floor, and a uniform logging policy."""

    name = "random"

    def __init__(self, world: ShopWorld):
        self.world = world

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator) -> RankedList:
        cands = self.world.candidates(segment, day)
        k = min(k, len(cands))
        chosen = rng.choice(len(cands), size=k, replace=False)
        steps = [1.0 / (len(cands) - j) for j in range(k)]
        return RankedList([cands[i].sku for i in chosen], float(np.prod(steps)), steps, [1.0 / len(cands)] * k)


class PopularityRanker:
    """Most clicked and bought first, counted per query from past sessions; BM25 breaks ties.

    Counts start from `history` (e.g. logging-policy sessions before day 0) and grow with
    every simulated day through `observe_day`. A newly launched product has no count and so
    stays below everything already clicked: the cold-start problem, measured by
    `days_to_top3` in metrics.py.
    """

    name = "popularity"

    def __init__(self, world: ShopWorld, purchase_weight: float = 3.0, history: Sequence = (),
                 bm25: BM25Ranker | None = None):
        self.world = world
        self.bm25 = bm25 or BM25Ranker(world)
        self.purchase_weight = purchase_weight
        self.counts: dict[str, Counter[str]] = {}
        self.observe_day(-1, history)

    def observe_day(self, day: int, sessions: Sequence) -> None:
        """Add the clicks and purchases of `sessions` (anything with query, skus, clicks, purchases)."""
        for s in sessions:
            c = self.counts.setdefault(normalize_query(s.query), Counter())
            for sku, click, buy in zip(s.skus, s.clicks, s.purchases):
                c[sku] += float(click) + self.purchase_weight * float(buy)

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator | None = None) -> RankedList:
        cands, bm25 = self.bm25.candidate_scores(query, segment, day)
        c = self.counts.get(normalize_query(query), Counter())
        order = sorted(range(len(cands)), key=lambda i: (-c[cands[i].sku], -bm25[i]))
        return deterministic([cands[i].sku for i in order[:k]])


BASELINE_NAMES = ("bm25", "popularity", "oracle", "random", "pl-bm25:TEMPERATURE")


def make_baseline(name: str, world: ShopWorld, history: Sequence = (), marginal_samples: int = 0):
    """A baseline ranker by name: bm25, popularity (counts from `history`), oracle, random or
    pl-bm25:T (the Plackett-Luce logging policy at temperature T; plain pl-bm25 means T = 0.5)."""
    if name == "bm25":
        return BM25Ranker(world)
    if name == "popularity":
        return PopularityRanker(world, history=history)
    if name == "oracle":
        return OracleRanker(world)
    if name == "random":
        return RandomRanker(world)
    if name == "pl-bm25" or name.startswith("pl-bm25:"):
        raw = name.partition(":")[2] or "0.5"
        try:
            temperature = float(raw)
        except ValueError:
            raise ValueError(f"pl-bm25:{raw}: the temperature must be a number") from None
        return PlackettLuceLogger(world, temperature, marginal_samples)
    raise ValueError(f"unknown ranker {name!r} (known: {', '.join(BASELINE_NAMES)})")
