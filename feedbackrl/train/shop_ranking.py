"""A trained policy as a shop ranker: the prompt it reads, and greedy, constrained generation of
SKU lists.

`ShopPrompter` renders a query as the policy's prompt: `render_prompt` alone, or with BM25's top
`candidates` SKUs written after it (`search: q [mobile] bm25: EF-GM02 ... ->`). That retrieval
context is what lets a tiny model trained from scratch say anything about a wording it never
trained on: the held-out phrasing's candidate set looks like those of the training phrasings
of the same intent (the same keyword traps come up), and the policy may still write any SKU on
sale, not only the candidates. With `similar_query` a wording the logs do not hold is first
rewritten to the nearest logged query by a pretrained sentence encoder ("basic phone for
grandparents" -> "phone for elderly"): the meaning of a new wording, which a model trained from
scratch cannot read, comes from the encoder. `greedy_lists` ranks many (query, segment) pairs on one day in one batched `generate` call;
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
from feedbackrl.tasks.shop.similar_queries import SimilarQueries
from feedbackrl.tasks.shop.text_format import parse_ranking, render_prompt
from feedbackrl.tasks.shop.world import ShopWorld


class ShopPrompter:
    def __init__(self, world: ShopWorld, candidates: int = 0, bm25: BM25Ranker | None = None,
                 similar_query: str = "", similar: SimilarQueries | None = None):
        """`similar_query`: "" (off), "minilm" or a local encoder directory: a query the logs do
        not hold is rewritten to the nearest logged one (the intents' training phrasings) before
        the prompt is written and BM25 retrieves (`feedbackrl/tasks/shop/similar_queries.py`);
        `similar` passes a ready lookup."""
        self.world, self.candidates = world, candidates
        self._bm25 = bm25
        self.similar_query = similar_query
        self._similar = similar
        self._cache: dict[tuple[str, str, int], str] = {}

    @property
    def active(self) -> bool:
        """Whether prompts carry anything beyond `render_prompt(query, segment)`."""
        return self.candidates > 0 or bool(self.similar_query) or self._similar is not None

    @property
    def similar(self) -> SimilarQueries | None:
        if self._similar is None and self.similar_query:
            logged = [(q, it.segment) for it in self.world.intents for q in it.train_phrasings]
            self._similar = SimilarQueries(logged, self.similar_query)
        return self._similar

    def __call__(self, query: str, segment: str, day: int) -> str:
        if not self.active:
            return render_prompt(query, segment)
        key = (query, segment, day)
        if key not in self._cache:  # BM25 is deterministic and a run asks the same phrasings again
            similar = self.similar
            if similar is not None:  # query rewriting: the nearest logged query (itself if logged)
                query = similar(query, segment, exclude_self=False) or query
            text = render_prompt(query, segment).removesuffix("->")
            if self.candidates > 0:
                if self._bm25 is None:
                    self._bm25 = BM25Ranker(self.world)
                skus = self._bm25.rank(query, segment, day, self.candidates).skus
                text += "bm25:" + "".join(f" {s}" for s in skus) + " "
            self._cache[key] = text + "->"
        return self._cache[key]

    def precompute(self, queries: Sequence[tuple[str, str]]) -> None:
        """Encode many queries for the similar-query lookup in one batched pass."""
        if self.similar is not None:
            self.similar.precompute(queries)


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


def full_orders(policy: Policy, world: ShopWorld, queries: Sequence[tuple[str, str]], day: int,
                prompter: ShopPrompter | None = None) -> list[list[str]]:
    """The policy's whole order of the products on sale on `day` for each (query, segment):
    the greedy top k of `greedy_lists` continued, one SKU after another without repeats, until
    every product is placed (or the model's context is full). Where a top k rightly leaves two
    products out, this says which of them the policy prefers."""
    if not queries:
        return []
    prompter = prompter or ShopPrompter(world)
    prompts = [prompter(q, seg, day) for q, seg in queries]
    n = len(world.catalog_on(day))
    limit = getattr(policy.model.config, "max_position_embeddings", None)
    if limit:  # a catalog larger than the model's context: order as many as fit
        longest = max(len(policy.tokenizer(p)["input_ids"]) for p in prompts)
        n = max(1, min(n, limit - longest - 1))
    constraint = CatalogConstraint(policy.tokenizer, world.catalog, day, n, world.calendar)
    samples = policy.generate(prompts, 1, greedy=True, max_new_tokens=n + 1, constraint=constraint)
    return [parse_ranking(s.completion, world.catalog, world.calendar, day, n).items for s in samples]


class PolicyRanker:
    """A policy (or a checkpoint directory) ranking with greedy constrained decoding."""

    def __init__(self, policy: Policy | str | Path, world: ShopWorld, name: str = "policy", candidates: int = 0,
                 similar_query: str = ""):
        self.policy = policy if isinstance(policy, Policy) else Policy.load(policy)
        self.world = world
        self.name = name
        self.prompter = ShopPrompter(world, candidates, similar_query=similar_query)
        self._cache: dict[tuple[str, str, int, int], list[str]] = {}

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator | None = None) -> RankedList:
        key = (query, segment, day, k)
        if key not in self._cache:
            (self._cache[key],) = greedy_lists(self.policy, self.world, [(query, segment)], day, k, self.prompter)
        # a generated list's probability is not tracked here: propensity unknown
        return RankedList(list(self._cache[key]), None, None, None)
