"""ShopTask: e-commerce search as a `Task` for the online loop.

A prompt is a shopper's query and segment; the completion is a ranked list of SKUs; the
reward is what simulated shoppers do with it (`EngagementReward`). Training prompts use the
intents' training phrasings, evaluation prompts their held-out phrasings, so evaluation
measures ranking for wordings the policy never trained on. The task carries a simulated day
(`set_day`): launches and the festival sale change what is available and what shoppers want.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import numpy as np

from feedbackrl.sample import Sample
from feedbackrl.tasks.base import Prompt
from feedbackrl.tasks.shop.baselines import BM25Ranker, PlackettLuceLogger
from feedbackrl.tasks.shop.constraint import CatalogConstraint
from feedbackrl.tasks.shop.metrics import list_ndcg, summarize, summarize_by
from feedbackrl.tasks.shop.reward import EngagementReward, EngagementRewardConfig, ShopQuery
from feedbackrl.tasks.shop.simulator import ShopperSimulator
from feedbackrl.tasks.shop.text_format import parse_ranking, render_completion, render_prompt
from feedbackrl.tasks.shop.traffic import SessionRecord
from feedbackrl.tasks.shop.world import ShopWorld, load_shop_world


@dataclass
class ShopTaskConfig:
    catalog: str = ""  # catalog JSON; empty = the bundled data/shop/catalog.json
    intents: str = ""  # intents JSON; empty = the bundled data/shop/intents.json
    day: int = 0  # simulated day the task starts on
    festival_start_day: int | None = None  # move the catalog's festival sale (same length)
    k: int = 5  # items per list
    reward: EngagementRewardConfig = field(default_factory=EngagementRewardConfig)
    eval_shoppers: int = 64  # simulated shoppers per evaluation list
    eval_seed: int = 1234  # the same shoppers for every evaluation: checkpoints compare fairly
    sft_source: Literal["bm25", "logging"] = "bm25"  # imitate static search or its randomised twin
    logging_temperature: float = 0.5  # for sft_source "logging"

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("k: must be >= 1")
        if self.day < 0:
            raise ValueError("day: must be >= 0")
        if self.eval_shoppers < 1:
            raise ValueError("eval_shoppers: must be >= 1")
        if self.logging_temperature <= 0:
            raise ValueError("logging_temperature: must be > 0")


class ShopTask:
    name = "shop"

    def __init__(self, config: ShopTaskConfig | None = None, world: ShopWorld | None = None):
        self.config = config or ShopTaskConfig()
        self.config.validate()
        self.world = world or load_shop_world(self.config.catalog, self.config.intents, self.config.festival_start_day)
        self.day = self.config.day
        # The reward's k is the task's k: the shopper sees the list the task asks for.
        self._reward = EngagementReward(self.world, replace(self.config.reward, k=self.config.k))
        self._bm25: BM25Ranker | None = None

    # ------------------------------------------------------------------ calendar
    def set_day(self, day: int) -> None:
        if day < 0:
            raise ValueError(f"day must be >= 0, got {day}")
        self.day = day

    # ------------------------------------------------------------------ prompts
    def _prompt(self, intent, query: str) -> Prompt:
        ref = ShopQuery(intent.id, query, intent.segment, self.day)
        return Prompt(render_prompt(query, intent.segment), reference=ref,
                      metadata={"segment": intent.segment, "intent": intent.id, "query": query, "day": self.day})

    def train_prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        out = []
        for _ in range(n):
            intent = rng.choices(self.world.intents, weights=[it.traffic for it in self.world.intents])[0]
            out.append(self._prompt(intent, rng.choice(intent.train_phrasings)))
        return out

    def eval_prompts(self) -> list[Prompt]:
        return [self._prompt(it, q) for it in self.world.intents for q in it.eval_phrasings]

    # ------------------------------------------------------------------ reward and evaluation
    def reward(self) -> EngagementReward:
        return self._reward

    def constraint(self, tokenizer, segments: Sequence[str] | None = None) -> CatalogConstraint:
        """Constrained decoding for today's catalog (see constraint.py)."""
        return CatalogConstraint(tokenizer, self.world.catalog, self.day, self.config.k,
                                 self.world.calendar, segments)

    def simulate_samples(self, samples: Sequence[Sample]) -> list[SessionRecord]:
        """`eval_shoppers` sessions per sample with shoppers fixed by `eval_seed` and the sample's index."""
        world, k = self.world, self.config.k
        simulator = ShopperSimulator(self.config.reward.shoppers)
        records = []
        for i, s in enumerate(samples):
            q = s.reference
            if not isinstance(q, ShopQuery):
                raise ValueError(f"sample {i}: shop evaluation needs a ShopQuery reference, got {type(q).__name__}")
            parsed = parse_ranking(s.completion, world.catalog, world.calendar, q.day, k)
            utils = world.utilities(world.intent_by_id[q.intent_id], q.day)
            u = [utils[x] for x in parsed.items]
            prices = [world.price_on(world.catalog.by_sku[x], q.day) for x in parsed.items]
            ev = simulator.simulate(u, prices, self.config.eval_shoppers, np.random.default_rng([self.config.eval_seed, i]))
            ndcg = list_ndcg(utils, parsed.items, 5)
            for j in range(self.config.eval_shoppers):
                records.append(SessionRecord(
                    q.day, q.intent_id, q.segment, q.query, parsed.items, ev.clicks[j].tolist(),
                    ev.carts[j].tolist(), ev.purchases[j].tolist(), float(ev.revenue[j]), u, ndcg))
        return records

    def evaluate(self, samples: Sequence[Sample]) -> dict[str, float]:
        """ctr, sessions_with_click, add_to_cart_rate, conversion, revenue_per_session, ndcg@5 (overall and
        `name/segment`), valid_fraction (lists with no mistake), invalid_per_list, mean_list_length."""
        if not samples:
            return {}
        world, k = self.world, self.config.k
        parsed = [parse_ranking(s.completion, world.catalog, world.calendar, s.reference.day, k)
                  if isinstance(s.reference, ShopQuery) else None for s in samples]
        records = self.simulate_samples(samples)
        out = {name: float(v) for name, v in summarize(records).items() if name != "sessions"}
        for seg, metrics in summarize_by(records, lambda r: r.segment).items():
            for name in ("ctr", "ndcg@5", "conversion"):
                out[f"{name}/{seg}"] = float(metrics[name])
        out["valid_fraction"] = sum(p.valid for p in parsed) / len(samples)
        out["invalid_per_list"] = sum(p.invalid_count for p in parsed) / len(samples)
        out["mean_list_length"] = sum(len(p.items) for p in parsed) / len(samples)
        return out

    # ------------------------------------------------------------------ warm start and tokenizer
    def _bm25_ranker(self) -> BM25Ranker:
        if self._bm25 is None:
            self._bm25 = BM25Ranker(self.world)
        return self._bm25

    def sft_pairs(self, n: int, rng: random.Random) -> list[tuple[str, str]]:
        """Imitation of static search: (prompt, BM25 top-k) pairs, or Plackett-Luce logging
        samples over BM25 when `sft_source` is "logging"."""
        bm25 = self._bm25_ranker()
        ranker = bm25 if self.config.sft_source == "bm25" else PlackettLuceLogger(
            self.world, self.config.logging_temperature, bm25=bm25)
        np_rng = np.random.default_rng(rng.getrandbits(63))
        pairs = []
        for p in self.train_prompts(n, rng):
            q: ShopQuery = p.reference
            ranked = ranker.rank(q.query, q.segment, q.day, self.config.k, np_rng)
            pairs.append((p.text, render_completion(ranked.skus)))
        return pairs

    def corpus(self) -> list[str]:
        """Titles, descriptions, training phrasings as prompts, and BM25 lists as completions.
        Held-out phrasings are left out so evaluation wording stays unseen."""
        out = [p.text for p in self.world.catalog.products]
        bm25 = self._bm25_ranker()
        for it in self.world.intents:
            for q in it.train_phrasings:
                ranked = bm25.rank(q, it.segment, self.day, self.config.k)
                out.append(render_prompt(q, it.segment) + render_completion(ranked.skus))
        return out

    def extra_tokens(self) -> list[str]:
        """Every SKU, to be added to the tokenizer as a whole token."""
        return self.world.catalog.skus
