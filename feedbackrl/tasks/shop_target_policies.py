"""Named target policies for `feedbackrl ope --logs LOGS --policy NAME`.

Candidates of a query are the items the logs ever showed for it: a target can only be
evaluated on items the logger could show, and this makes that explicit.

- `random`: uniform Plackett-Luce over the candidates.
- `popularity`: the candidates with the most clicks in the logs, in that order (counted over
  all queries). It is fitted on the very logs it is evaluated on, so its estimate is a
  little optimistic; use a held-out log for a fair number.
- `bm25`, `pl-bm25:T`, `oracle`: need the shop catalog and simulator
  (`feedbackrl.tasks.shop`) and are resolved there when it is installed.
- a checkpoint folder: not supported yet (needs list probabilities from the policy model).

Unknown or unavailable names raise ValueError with one line; the CLI prints it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from feedbackrl.store.evaluation import LoggedRankings
from feedbackrl.store.schema import Interaction
from feedbackrl.store.target_policies import PlackettLuceTarget, TopKTarget


def logged_candidates(rankings: LoggedRankings) -> dict[str, list[str]]:
    """query -> every item the logs showed for it, sorted."""
    seen: dict[str, set[str]] = {}
    for query, it in zip(rankings.query_keys, rankings.interactions):
        seen.setdefault(query, set()).update(it.items)
    return {query: sorted(items) for query, items in seen.items()}


def make_target_policy(policy: str, rankings: LoggedRankings, shop_config: Path | None = None, seed: int = 0):
    candidates = logged_candidates(rankings)

    def of(interaction: Interaction) -> list[str]:
        return candidates.get(interaction.query or "", [])

    if policy == "random":
        return PlackettLuceTarget("random", lambda it: dict.fromkeys(of(it), 0.0), seed=seed)
    if policy == "popularity":
        clicks: Counter[str] = Counter()
        for it in rankings.interactions:
            clicks.update(sku for sku, c in zip(it.items, it.clicks) if c)
        return TopKTarget("popularity", lambda it: {sku: float(clicks[sku]) for sku in of(it)})
    if policy in ("bm25", "oracle") or policy.startswith("pl-bm25"):
        raise ValueError(
            f"ope: --policy {policy} needs the shop catalog and simulator (feedbackrl.tasks.shop), "
            "which this build does not wire in yet; use random or popularity"
        )
    if Path(policy).exists():
        raise ValueError(f"ope: {policy}: evaluating a checkpoint is not supported yet")
    raise ValueError(f"ope: unknown --policy {policy!r}; use bm25, popularity, oracle, random, pl-bm25:T or a checkpoint")
