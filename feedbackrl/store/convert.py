"""From logged interactions to training data: reward tuples, preference pairs, good/bad labels.

Every output speaks the policy's language: the prompt is the rendered query and a response
is a whole ranked list written as SKUs separated by spaces, the same text the policy
generates online. So the three outputs feed the offline loops unchanged:

- tuples (prompt, response, reward, logged log-propensity, item rewards): weighted
  regression and off-policy policy gradient. reward = sum over positions of
  click_weight*click + add_to_cart_weight*cart + purchase_weight*purchase; `item_rewards`
  is that sum's term of each listed item, in list order (what per-item credit,
  `weighted.credit: item`, puts on the item's tokens).
- preference pairs (prompt, chosen, rejected): DPO and Bradley-Terry reward models. A pair
  is defined on two items of one logged list and written as two *whole lists* that differ
  by exactly one swap: `chosen` ranks the preferred item above the other, `rejected` the
  reverse, everything else as logged. Whole lists keep chosen and rejected in the response
  space the policy samples from, and the single swap makes the pair say only "A above B".
  Two kinds of item-level preference are read from a list:
    * purchased over clicked-only: A bought, B clicked but not bought (any positions);
    * clicked over skipped-above: A clicked at position j, B not clicked at i < j. The
      shopper looked past B to reach A (Joachims et al. 2005, "skip above"); items below
      the last click give no pair, they may never have been looked at.
- labels (prompt, response, desirable): unpaired data for KTO. A logged list is desirable
  when its reward reaches `min_reward` (by default one click's worth), else undesirable.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from feedbackrl.store.schema import Interaction

PromptRenderer = Callable[[Interaction], str]


@dataclass
class RewardWeights:
    """How much each event at a position is worth; a purchase implies the click before it."""

    click: float = 1.0
    add_to_cart: float = 2.0
    purchase: float = 4.0


def default_render_prompt(interaction: Interaction) -> str:
    """'search: red shoes [bargain] ->' (the segment in brackets only when known)."""
    query = interaction.query or ""
    if interaction.segment:
        return f"search: {query} [{interaction.segment}] ->"
    return f"search: {query} ->"


def render_response(items: list[str]) -> str:
    return " ".join(items)


def item_rewards(interaction: Interaction, weights: RewardWeights) -> list[float]:
    """What each listed item earned, in list order: click, add-to-cart and purchase weights of
    the events at its position."""
    k = len(interaction.items)
    carts = interaction.add_to_carts or [False] * k
    purchases = interaction.purchases or [False] * k
    return [float(weights.click * bool(c) + weights.add_to_cart * bool(a) + weights.purchase * bool(p))
            for c, a, p in zip(interaction.clicks, carts, purchases)]


def interaction_reward(interaction: Interaction, weights: RewardWeights) -> float:
    return float(sum(item_rewards(interaction, weights)))


@dataclass
class LoggedTuple:
    prompt: str
    response: str
    reward: float
    impression_id: str
    # log pi_logging(response | prompt); None when the log has no list propensity.
    logged_logprob: float | None
    policy_version: str | None
    # each listed item's part of `reward`, in list order (sums to `reward`)
    item_rewards: list[float] | None = None


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    kind: Literal["purchased_over_clicked", "clicked_over_skipped_above"]
    impression_id: str
    preferred_item: str
    other_item: str


@dataclass
class LabelledResponse:
    prompt: str
    response: str
    desirable: bool
    reward: float
    impression_id: str


# Explicit so that a first chunk of nulls (no propensities) cannot fix a column's type.
_RECORD_SCHEMAS = {
    LoggedTuple: pa.schema([
        ("prompt", pa.string()), ("response", pa.string()), ("reward", pa.float64()),
        ("impression_id", pa.string()), ("logged_logprob", pa.float64()), ("policy_version", pa.string()),
        ("item_rewards", pa.list_(pa.float64())),
    ]),
    PreferencePair: pa.schema([
        ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()), ("kind", pa.string()),
        ("impression_id", pa.string()), ("preferred_item", pa.string()), ("other_item", pa.string()),
    ]),
    LabelledResponse: pa.schema([
        ("prompt", pa.string()), ("response", pa.string()), ("desirable", pa.bool_()),
        ("reward", pa.float64()), ("impression_id", pa.string()),
    ]),
}


def to_tuples(
    interactions: Iterable[Interaction],
    weights: RewardWeights | None = None,
    render_prompt: PromptRenderer = default_render_prompt,
) -> Iterator[LoggedTuple]:
    weights = weights or RewardWeights()
    for it in interactions:
        yield LoggedTuple(
            prompt=render_prompt(it),
            response=render_response(it.items),
            reward=interaction_reward(it, weights),
            impression_id=it.impression_id,
            logged_logprob=it.list_log_propensity,
            policy_version=it.policy_version,
            item_rewards=item_rewards(it, weights),
        )


def _swapped_pair(items: list[str], better: int, worse: int) -> tuple[str, str]:
    """(chosen, rejected): the logged list with `better` ranked above `worse`, and the reverse."""
    swapped = list(items)
    swapped[better], swapped[worse] = swapped[worse], swapped[better]
    as_logged, after_swap = render_response(items), render_response(swapped)
    if better < worse:  # already above in the log
        return as_logged, after_swap
    return after_swap, as_logged


def preference_pairs_of(interaction: Interaction, render_prompt: PromptRenderer = default_render_prompt) -> list[PreferencePair]:
    items = interaction.items
    k = len(items)
    clicks = [bool(c) for c in interaction.clicks]
    purchases = [bool(p) for p in (interaction.purchases or [False] * k)]
    prompt = render_prompt(interaction)
    pairs: list[PreferencePair] = []

    def add(kind, better: int, worse: int) -> None:
        chosen, rejected = _swapped_pair(items, better, worse)
        pairs.append(PreferencePair(prompt, chosen, rejected, kind, interaction.impression_id, items[better], items[worse]))

    for a in range(k):
        if not purchases[a]:
            continue
        for b in range(k):
            if clicks[b] and not purchases[b]:
                add("purchased_over_clicked", a, b)
    for j in range(k):
        if not clicks[j]:
            continue
        for i in range(j):
            if not clicks[i]:
                add("clicked_over_skipped_above", j, i)
    return pairs


def to_preference_pairs(
    interactions: Iterable[Interaction], render_prompt: PromptRenderer = default_render_prompt
) -> Iterator[PreferencePair]:
    for it in interactions:
        yield from preference_pairs_of(it, render_prompt)


def to_labels(
    interactions: Iterable[Interaction],
    weights: RewardWeights | None = None,
    min_reward: float | None = None,
    render_prompt: PromptRenderer = default_render_prompt,
) -> Iterator[LabelledResponse]:
    weights = weights or RewardWeights()
    threshold = weights.click if min_reward is None else min_reward
    for it in interactions:
        reward = interaction_reward(it, weights)
        yield LabelledResponse(render_prompt(it), render_response(it.items), reward >= threshold, reward, it.impression_id)


def write_records(path: str | os.PathLike, records: Iterable, chunk_rows: int = 10_000) -> int:
    """Write dataclass records to `.parquet` (in row groups) or `.jsonl`, streaming; returns count.

    Written under a temporary name and renamed, so an interrupted conversion leaves no half file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise ValueError(f"{path}: output must end in .parquet or .jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    count = 0
    try:
        if suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for record in records:
                    f.write(json.dumps(asdict(record)) + "\n")
                    count += 1
        else:
            writer = None
            buffer: list[dict] = []
            try:
                for record in records:
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, _RECORD_SCHEMAS[type(record)])
                    buffer.append(asdict(record))
                    count += 1
                    if len(buffer) >= chunk_rows:
                        writer.write_table(pa.Table.from_pylist(buffer, schema=writer.schema))
                        buffer.clear()
                if buffer:
                    writer.write_table(pa.Table.from_pylist(buffer, schema=writer.schema))
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:  # no records: still a valid, empty file
                pq.write_table(pa.table({}), tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count
