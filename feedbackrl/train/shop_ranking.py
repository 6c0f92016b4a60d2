"""A trained policy as a shop ranker: the prompt it reads, and greedy, constrained generation of
SKU lists.

`ShopPrompter` renders a query as the policy's prompt: `render_prompt` alone, or with BM25's top
`candidates` SKUs written after it (`search: q [mobile] bm25: EF-GM02 ... ->`). That retrieval
context is what lets a tiny model trained from scratch say anything about a wording it never
trained on: the held-out phrasing's candidate set looks like those of the training phrasings
of the same intent (the same keyword traps come up), and the policy may still write any SKU on
sale, not only the candidates. `greedy_lists` ranks many (query, segment) pairs on one day in one batched `generate` call;
`PolicyRanker` gives a checkpoint the `rank(query, segment, day, k, rng)` interface of the
baselines (through `TextRanker`), so `feedbackrl shop simulate --policy runs/x/checkpoints/...`
simulates it like any other ranker. Greedy decoding is deterministic, so lists are cached
per (query, segment, day): a week of traffic asks each phrasing many times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from feedbackrl.policy.model import Policy
from feedbackrl.tasks.shop.baselines import BM25Ranker, RankedList
from feedbackrl.tasks.shop.constraint import CatalogConstraint
from feedbackrl.tasks.shop.text_format import parse_ranking, render_prompt
from feedbackrl.tasks.shop.world import ShopWorld


class ShopPrompter:
    def __init__(self, world: ShopWorld, candidates: int = 0, bm25: BM25Ranker | None = None):
        self.world, self.candidates = world, candidates
        self._bm25 = bm25
        self._cache: dict[tuple[str, str, int], str] = {}

    def __call__(self, query: str, segment: str, day: int) -> str:
        base = render_prompt(query, segment)
        if self.candidates <= 0:
            return base
        key = (query, segment, day)
        if key not in self._cache:  # BM25 is deterministic and a run asks the same phrasings again
            if self._bm25 is None:
                self._bm25 = BM25Ranker(self.world)
            skus = self._bm25.rank(query, segment, day, self.candidates).skus
            self._cache[key] = base.removesuffix("->") + "bm25:" + "".join(f" {s}" for s in skus) + " ->"
        return self._cache[key]


def greedy_lists(policy: Policy, world: ShopWorld, queries: Sequence[tuple[str, str]], day: int, k: int,
                 prompter: ShopPrompter | None = None) -> list[list[str]]:
    """The policy's top-k SKUs for each (query, segment) on `day`, decoded as in training: any
    SKU on sale that day (the segment is in the prompt; the policy has learnt to keep to it)."""
    if not queries:
        return []
    prompter = prompter or ShopPrompter(world)
    constraint = CatalogConstraint(policy.tokenizer, world.catalog, day, k, world.calendar)
    samples = policy.generate([prompter(q, seg, day) for q, seg in queries], 1, greedy=True,
                              max_new_tokens=k + 1, constraint=constraint)
    return [parse_ranking(s.completion, world.catalog, world.calendar, day, k).items for s in samples]


class PolicyRanker:
    """A policy (or a checkpoint directory) ranking with greedy constrained decoding."""

    def __init__(self, policy: Policy | str | Path, world: ShopWorld, name: str = "policy", candidates: int = 0):
        self.policy = policy if isinstance(policy, Policy) else Policy.load(policy)
        self.world = world
        self.name = name
        self.prompter = ShopPrompter(world, candidates)
        self._cache: dict[tuple[str, str, int, int], list[str]] = {}

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator | None = None) -> RankedList:
        key = (query, segment, day, k)
        if key not in self._cache:
            (self._cache[key],) = greedy_lists(self.policy, self.world, [(query, segment)], day, k, self.prompter)
        # a generated list's probability is not tracked here: propensity unknown
        return RankedList(list(self._cache[key]), None, None, None)
