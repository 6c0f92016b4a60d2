"""Named target policies for `feedbackrl ope --logs LOGS --policy NAME`.

Shop logs (every query a phrasing of the shop's intents, as `feedbackrl shop simulate --log`
writes them) are evaluated against the shop's own rankers, over the same candidates they use
online: the products of the query's segment available on the impression's day
(`user_features.day`). Each target reproduces its ranker exactly (ties included), so an
estimate can be compared with `feedbackrl shop simulate --policy NAME`.

- `bm25`, `oracle`: deterministic; item-position marginals are one-hot.
- `popularity`: the shop's popularity ranker with the logs as its history (clicks + 3 x
  purchases per query, BM25 breaking ties). It is fitted on the very logs it is evaluated
  on, so its estimate is a little optimistic; use a held-out log for a fair number.
- `random`: uniform over the day's candidates (Plackett-Luce with equal scores).
- `pl-bm25:T`: Plackett-Luce over BM25 scores / T, the law of the shop's logging policy;
  marginals by Gumbel-top-k sampling, `num_samples` per context.
- a checkpoint folder: a trained policy (`Policy.load`) decoding greedily under the shop's
  `CatalogConstraint`, its completion parsed with `parse_ranking`. Deterministic, so its
  probability of its own list is 1 and its marginals are one-hot.

Deterministic targets almost never reproduce a stochastic logger's whole list, which is why
the runner's default unit is (impression, position) with item-position marginals: a logged
item at position k counts whenever the target would also put it at k.

Any other log (not from the shop) gets only `random` and `popularity`, over the items the
logs ever showed for each query. Unknown or unavailable names raise ValueError with one
line; the CLI prints it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from feedbackrl.store.evaluation import LoggedRankings
from feedbackrl.store.schema import Interaction
from feedbackrl.store.target_policies import PlackettLuceTarget, RankingTarget, TopKTarget

SHOP_POLICIES = ("bm25", "oracle", "popularity", "random", "pl-bm25:T")


def logged_candidates(rankings: LoggedRankings) -> dict[str, list[str]]:
    """query -> every item the logs showed for it, sorted."""
    seen: dict[str, set[str]] = {}
    for query, it in zip(rankings.query_keys, rankings.interactions):
        seen.setdefault(query, set()).update(it.items)
    return {query: sorted(items) for query, items in seen.items()}


def interaction_day(interaction: Interaction) -> int:
    """The simulated day of a shop impression (`user_features.day`, as session_log writes it)."""
    day = interaction.user_features.get("day") if interaction.user_features else None
    if day is None:
        from feedbackrl.tasks.shop.session_log import START

        return max(0, (interaction.timestamp - START).days) if interaction.timestamp else 0
    return int(day)


def load_world(shop_config: Path | None = None):
    """The shop world of a `feedbackrl shop simulate --config` YAML (bundled data without one)."""
    from feedbackrl.config import load_config
    from feedbackrl.tasks.shop.traffic import ShopSimulationConfig
    from feedbackrl.tasks.shop.world import load_shop_world

    cfg = load_config(shop_config, ShopSimulationConfig, [])
    return load_shop_world(cfg.catalog, cfg.intents, cfg.festival_start_day)


def unknown_queries(rankings: LoggedRankings, world) -> list[str]:
    from feedbackrl.tasks.shop.intents import normalize_query

    known = {normalize_query(p) for intent in world.intents for p in intent.phrasings}
    return sorted({q for q in rankings.query_keys if normalize_query(q) not in known})


@dataclass
class ShopContexts:
    """What a shop ranker sees of an impression: query, segment, day; and a key per candidate set.

    BM25 scores do not depend on the day, only the candidate set does (launches), so keying
    Plackett-Luce marginals by candidate set instead of by day computes each one once, not 7 times."""

    world: object

    def __post_init__(self) -> None:
        self._candidate_ids: dict[tuple[str, int], int] = {}
        self._by_skus: dict[tuple[str, ...], int] = {}

    def segment(self, it: Interaction) -> str:
        return it.segment or self.world.intent_for_query(it.query or "").segment

    def candidate_set(self, segment: str, day: int) -> int:
        key = (segment, day)
        if key not in self._candidate_ids:
            skus = tuple(p.sku for p in self.world.candidates(segment, day))
            self._candidate_ids[key] = self._by_skus.setdefault(skus, len(self._by_skus))
        return self._candidate_ids[key]

    def by_candidates(self, it: Interaction) -> tuple:
        segment = self.segment(it)
        return (it.query, segment, self.candidate_set(segment, interaction_day(it)))

    def by_day(self, it: Interaction) -> tuple:
        return (it.query, self.segment(it), interaction_day(it))


@dataclass
class _LoggedSession:
    """The fields PopularityRanker.observe_day reads from a session."""

    query: str
    skus: list[str]
    clicks: list[bool]
    purchases: list[bool]


def _ranker_target(name: str, ranker, contexts: ShopContexts, key) -> RankingTarget:
    def rank(it: Interaction, k: int) -> list[str]:
        return ranker.rank(it.query, contexts.segment(it), interaction_day(it), k, None).skus

    return RankingTarget(name, rank, context_key=key)


def shop_target(policy: str, world, rankings: LoggedRankings | None = None, *, seed: int = 0,
                num_samples: int = 20_000, bm25=None):
    """A shop ranker as a `TargetPolicy`; `rankings` are the history of `popularity`."""
    from feedbackrl.tasks.shop.baselines import BM25Ranker, OracleRanker, PopularityRanker

    contexts = ShopContexts(world)
    if policy == "oracle":
        # Utilities move with the day (festival prices), so the oracle's list does too.
        return _ranker_target("oracle", OracleRanker(world), contexts, contexts.by_day)
    if policy == "random":
        def uniform(it: Interaction) -> dict[str, float]:
            return {p.sku: 0.0 for p in world.candidates(contexts.segment(it), interaction_day(it))}

        return PlackettLuceTarget("random", uniform, num_samples=num_samples, seed=seed, context_key=contexts.by_candidates)
    if Path(policy).is_dir():
        return CheckpointTarget.load(Path(policy), world, contexts, rankings)
    bm25 = bm25 or BM25Ranker(world)
    if policy == "bm25":
        return _ranker_target("bm25", bm25, contexts, contexts.by_candidates)
    if policy == "popularity":
        history = [] if rankings is None else [
            _LoggedSession(it.query or "", list(it.items), list(it.clicks), list(it.purchases or [False] * len(it.items)))
            for it in rankings.interactions
        ]
        return _ranker_target("popularity", PopularityRanker(world, history=history, bm25=bm25), contexts, contexts.by_candidates)
    if policy == "pl-bm25" or policy.startswith("pl-bm25:"):
        raw = policy.partition(":")[2] or "0.5"
        try:
            temperature = float(raw)
        except ValueError:
            raise ValueError(f"ope: --policy {policy}: the temperature must be a number") from None
        if not temperature > 0:
            raise ValueError(f"ope: --policy {policy}: the temperature must be > 0")

        def bm25_scores(it: Interaction) -> dict[str, float]:
            cands, scores = bm25.candidate_scores(it.query, contexts.segment(it), interaction_day(it))
            return {p.sku: float(s) for p, s in zip(cands, scores)}

        return PlackettLuceTarget(f"pl-bm25:{temperature:g}", bm25_scores, temperature=temperature,
                                  num_samples=num_samples, seed=seed, context_key=contexts.by_candidates)
    raise ValueError(f"ope: unknown --policy {policy!r}; use {', '.join(SHOP_POLICIES)} or a checkpoint folder")


class CheckpointTarget(RankingTarget):
    """A trained policy's greedy list per context, generated in batches up front.

    Greedy decoding under `CatalogConstraint` (only the day's SKUs of the query's segment, no
    repeats, EOS after k) makes the policy a deterministic ranker; without SKU tokens the
    constraint is off and whatever valid SKUs the completion holds are shown, in order (as
    the reward and `TextRanker` do)."""

    @classmethod
    def load(cls, path: Path, world, contexts: ShopContexts, rankings: LoggedRankings | None,
             batch_size: int = 64) -> "CheckpointTarget":
        from feedbackrl.policy.model import Policy

        if not (path / "config.json").exists():
            raise ValueError(f"ope: {path}: not a checkpoint folder (no config.json)")
        policy = Policy.load(path)
        target = cls(f"checkpoint:{path.name}", lambda it, k: [], context_key=contexts.by_day)
        target.policy, target.world, target.contexts, target.batch_size = policy, world, contexts, batch_size
        target.rank_fn = target._generate_one
        if rankings is not None and rankings.interactions:
            target.prepare(rankings.interactions, rankings.num_positions)
        return target

    def _generate_one(self, it: Interaction, k: int) -> list[str]:
        return self._generate([it], k)[0]

    def prepare(self, interactions: Sequence[Interaction], k: int) -> None:
        """Generate every distinct context's list in batches, one day at a time."""
        todo: dict[object, Interaction] = {}
        for it in interactions:
            key = (self.context_key(it), k)
            if key not in self._cache:
                todo.setdefault(key, it)
        by_day: dict[int, list[tuple[object, Interaction]]] = {}
        for key, it in todo.items():
            by_day.setdefault(interaction_day(it), []).append((key, it))
        for day_items in by_day.values():
            for start in range(0, len(day_items), self.batch_size):
                chunk = day_items[start:start + self.batch_size]
                for (key, _), skus in zip(chunk, self._generate([it for _, it in chunk], k)):
                    self._cache[key] = skus

    def _generate(self, interactions: Sequence[Interaction], k: int) -> list[list[str]]:
        from feedbackrl.tasks.shop.constraint import CatalogConstraint
        from feedbackrl.tasks.shop.text_format import parse_ranking, render_prompt

        day = interaction_day(interactions[0])
        segments = [self.contexts.segment(it) for it in interactions]
        constraint = CatalogConstraint(self.policy.tokenizer, self.world.catalog, day, k, self.world.calendar, segments=segments)
        prompts = [render_prompt(it.query, seg) for it, seg in zip(interactions, segments)]
        # Under the constraint a list is k SKU tokens and EOS; without it SKUs may take several tokens.
        max_new = k + 1 if constraint.active else 8 * k
        samples = self.policy.generate(prompts, greedy=True, constraint=constraint if constraint.active else None,
                                       max_new_tokens=max_new)
        return [parse_ranking(s.completion, self.world.catalog, self.world.calendar, day, k).items for s in samples]


def make_target_policy(policy: str, rankings: LoggedRankings, shop_config: Path | None = None, seed: int = 0,
                       num_samples: int = 20_000):
    """The target named `policy` for these logs (see the module docstring)."""
    shop_only = policy in ("bm25", "oracle") or policy.startswith("pl-bm25") or Path(policy).exists()
    if Path(policy).exists() and not Path(policy).is_dir():
        raise ValueError(f"ope: --policy {policy}: a checkpoint is a folder (saved by Policy.save), not a file")
    if not shop_only and policy not in ("random", "popularity"):
        raise ValueError(f"ope: unknown --policy {policy!r}; use {', '.join(SHOP_POLICIES)} or a checkpoint folder")

    world = load_world(shop_config)
    strangers = unknown_queries(rankings, world)
    if not strangers:
        return shop_target(policy, world, rankings, seed=seed, num_samples=num_samples)
    if shop_only:
        raise ValueError(
            f"ope: --policy {policy} ranks the shop's catalog, but query {strangers[0]!r} of the logs is not a phrasing "
            "of any shop intent (logs from `feedbackrl shop simulate --log`; --shop-config for other shop data)"
        )
    return _logged_target(policy, rankings, seed, num_samples)


def _logged_target(policy: str, rankings: LoggedRankings, seed: int, num_samples: int):
    """random / popularity over the items the logs showed for each query (non-shop logs)."""
    candidates = logged_candidates(rankings)

    def of(interaction: Interaction) -> list[str]:
        return candidates.get(interaction.query or "", [])

    if policy == "random":
        return PlackettLuceTarget("random", lambda it: dict.fromkeys(of(it), 0.0), num_samples=num_samples, seed=seed)
    clicks: Counter[str] = Counter()
    for it in rankings.interactions:
        clicks.update(sku for sku, c in zip(it.items, it.clicks) if c)
    return TopKTarget("popularity", lambda it: {sku: float(clicks[sku]) for sku in of(it)})
