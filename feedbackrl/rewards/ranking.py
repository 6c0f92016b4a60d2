"""Ranking metrics on one ranked list, and a reward built on them.

Conventions (the same as ranx's `ndcg_burges`, `mrr`, `precision`, `recall`, which the tests
check against):
- graded relevance: an id missing from `relevance` has relevance 0; an id is *relevant* when
  its relevance is > 0;
- nDCG gain is 2^rel - 1 and the discount is log2(rank + 1) with ranks from 1 (Burges et al.
  2005), so a highly relevant item is worth much more than two marginal ones; the ideal
  ranking is every judged id sorted by relevance, cut at k; no relevant id at all gives 0;
- an id repeated in the ranking counts only at its first position (a repeat adds nothing, but
  still takes a slot in the top k);
- precision@k divides by k even when fewer than k ids were ranked: an empty slot is a miss.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample


def _first_occurrences(ranked_ids: Sequence[str], k: int | None) -> list[str | None]:
    """The top k of the ranking with repeats replaced by None (they earn nothing)."""
    seen: set[str] = set()
    out: list[str | None] = []
    for doc in ranked_ids[: k if k is not None else len(ranked_ids)]:
        out.append(None if doc in seen else doc)
        seen.add(doc)
    return out


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    return sum((2.0**rel - 1.0) / math.log2(rank + 1) for rank, rel in enumerate(gains[:k], start=1))


def ndcg_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    """nDCG@k with gain 2^rel - 1 and discount log2(rank + 1)."""
    _check_k(k)
    gains = [relevance.get(d, 0.0) if d is not None else 0.0 for d in _first_occurrences(ranked_ids, k)]
    ideal = dcg_at_k(sorted((r for r in relevance.values() if r > 0), reverse=True), k)
    return dcg_at_k(gains, k) / ideal if ideal > 0 else 0.0


def mrr(ranked_ids: Sequence[str], relevance: Mapping[str, float], k: int | None = None) -> float:
    """Reciprocal rank of the first relevant id (within the top k if given); 0 if none."""
    if k is not None:
        _check_k(k)
    for rank, doc in enumerate(_first_occurrences(ranked_ids, k), start=1):
        if doc is not None and relevance.get(doc, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def precision_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    _check_k(k)
    hits = sum(1 for d in _first_occurrences(ranked_ids, k) if d is not None and relevance.get(d, 0.0) > 0)
    return hits / k


def recall_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    _check_k(k)
    n_relevant = sum(1 for r in relevance.values() if r > 0)
    if n_relevant == 0:
        return 0.0
    hits = sum(1 for d in _first_occurrences(ranked_ids, k) if d is not None and relevance.get(d, 0.0) > 0)
    return hits / n_relevant


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


METRICS: dict[str, Callable[..., float]] = {
    "ndcg": ndcg_at_k,
    "mrr": mrr,
    "precision": precision_at_k,
    "recall": recall_at_k,
}

# Ids as the shop task writes them ("SKU-123", "B07XYZ"): word characters and dashes.
DEFAULT_ID_PATTERN = r"[A-Za-z0-9][\w\-]*"


_ENUMERATION = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+", re.MULTILINE)


def parse_ranked_ids(completion: str, id_pattern: str = DEFAULT_ID_PATTERN) -> list[str]:
    """Ids in the order they appear in the completion (separators: anything not an id).

    List markers at the start of a line ("1. ", "2) ", "- ") are not ids.
    """
    return re.findall(id_pattern, _ENUMERATION.sub("", completion))


@dataclass
class RankingReward:
    """A ranking metric of the ids in the completion against graded relevance judgements.

    The reference is {"relevance": {id: grade}, "valid_ids": [...] (optional)} or just the
    {id: grade} dict. Ids outside `valid_ids` (when given) are reported and each costs
    `invalid_penalty`; repeats cost `duplicate_penalty`. The score is metric - penalties.
    details: metric, k, value, ranked (the parsed top k), invalid, duplicates.
    """

    name: str = "ranking"
    metric: str = "ndcg"  # one of METRICS: ndcg, mrr, precision, recall
    k: int = 10
    id_pattern: str = DEFAULT_ID_PATTERN
    invalid_penalty: float = 0.0
    duplicate_penalty: float = 0.0
    _metric_fn: Callable[..., float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown ranking metric {self.metric!r}; choose one of {sorted(METRICS)}")
        _check_k(self.k)
        self._metric_fn = METRICS[self.metric]

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [self._score(s) for s in samples]

    def _score(self, sample: Sample) -> RewardResult:
        relevance, valid_ids = _judgements(sample.reference)
        if relevance is None:
            return RewardResult(0.0, {}, "missing relevance judgements")
        ranked = parse_ranked_ids(sample.completion, self.id_pattern)[: self.k]
        value = self._metric_fn(ranked, relevance, self.k)
        invalid = [d for d in ranked if valid_ids is not None and d not in valid_ids]
        duplicates = [d for d, first in zip(ranked, _first_occurrences(ranked, None)) if first is None]
        score = value - self.invalid_penalty * len(invalid) - self.duplicate_penalty * len(duplicates)
        details = {"metric": self.metric, "k": self.k, "value": value, "ranked": ranked,
                   "invalid": invalid, "duplicates": duplicates}
        return RewardResult(score, details)


def _judgements(reference: Any) -> tuple[dict[str, float] | None, set[str] | None]:
    if not isinstance(reference, Mapping):
        return None, None
    if "relevance" in reference:
        valid = reference.get("valid_ids")
        return {str(k): float(v) for k, v in reference["relevance"].items()}, set(map(str, valid)) if valid is not None else None
    return {str(k): float(v) for k, v in reference.items()}, None
