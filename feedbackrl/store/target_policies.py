"""Target policies for OPE built from a scoring function: deterministic top-k and Plackett-Luce.

A ranking policy that scores candidates (BM25, popularity, a utility oracle) becomes a
`TargetPolicy` (see `evaluation.py`) in one of two ways:

- `TopKTarget`: show the k best-scoring candidates. Its item-position marginals are one-hot,
  its probability of a logged list is 1 or 0.
- `RankingTarget`: the same for a policy that returns a ranked list directly (a shop ranker,
  a language model decoding greedily): its own ties and quirks are kept exactly.
- `PlackettLuceTarget`: draw k items without replacement, each with probability
  proportional to exp(score / temperature) among those left (Plackett 1975, Luce 1959).
  The probability of a list is the product of those choice probabilities (exact). The
  item-position marginals have no closed form for k > 1, so they are estimated by sampling
  lists with the Gumbel-top-k trick (adding Gumbel noise to log-weights and sorting draws
  exactly from Plackett-Luce; Kool et al. 2019), `num_samples` per context, cached.

Scores come from `score_fn(interaction) -> {sku: score}` over the candidates of that
context; the candidate set is whatever the function returns.

`MixtureTarget` shows policy i's list with probability w_i: its marginals and list
probabilities are the w-weighted sums of its parts' (both are linear in the policy).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from feedbackrl.store.schema import Interaction

ScoreFn = Callable[[Interaction], dict[str, float]]


def _context_key(interaction: Interaction) -> object:
    return (interaction.query, interaction.segment)


def top_k_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest values of each row, largest first: [rows, k].

    argpartition then a sort of k columns: a full argsort of every row is ~5x slower on the
    shop's ~60 candidates, and the marginals of every context need tens of thousands of rows."""
    if k >= values.shape[1]:
        return np.argsort(-values, axis=1)[:, :k]
    part = np.argpartition(-values, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(values, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


@dataclass
class TopKTarget:
    name: str
    score_fn: ScoreFn
    context_key: Callable[[Interaction], object] = _context_key
    _cache: dict = field(default_factory=dict, repr=False)

    def ranking(self, interaction: Interaction, k: int) -> list[str]:
        key = (self.context_key(interaction), k)
        if key not in self._cache:
            scores = self.score_fn(interaction)
            # Ties broken by SKU so the ranking is a function of the context alone.
            self._cache[key] = sorted(scores, key=lambda s: (-scores[s], s))[:k]
        return self._cache[key]

    def position_marginals(self, interaction: Interaction, k: int) -> dict[str, np.ndarray]:
        out = {}
        for pos, sku in enumerate(self.ranking(interaction, k)):
            out[sku] = np.zeros(k)
            out[sku][pos] = 1.0
        return out

    def list_probability(self, interaction: Interaction) -> float:
        return float(self.ranking(interaction, len(interaction.items)) == list(interaction.items))


@dataclass
class RankingTarget:
    """Deterministic: `rank_fn(interaction, k)` is the list the policy shows in that context."""

    name: str
    rank_fn: Callable[[Interaction, int], list[str]]
    context_key: Callable[[Interaction], object] = _context_key
    _cache: dict = field(default_factory=dict, repr=False)

    def ranking(self, interaction: Interaction, k: int) -> list[str]:
        key = (self.context_key(interaction), k)
        if key not in self._cache:
            self._cache[key] = list(self.rank_fn(interaction, k))[:k]
        return self._cache[key]

    def position_marginals(self, interaction: Interaction, k: int) -> dict[str, np.ndarray]:
        out = {}
        for pos, sku in enumerate(self.ranking(interaction, k)):
            out[sku] = np.zeros(k)
            out[sku][pos] = 1.0
        return out

    def list_probability(self, interaction: Interaction) -> float:
        return float(self.ranking(interaction, len(interaction.items)) == list(interaction.items))


@dataclass
class MixtureTarget:
    name: str
    parts: list  # TargetPolicy objects
    weights: list[float]

    def __post_init__(self) -> None:
        if len(self.parts) != len(self.weights) or not self.parts:
            raise ValueError("a mixture needs one weight per part and at least one part")
        if any(w < 0 for w in self.weights) or not math.isclose(sum(self.weights), 1.0):
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {self.weights}")

    def context_key(self, interaction: Interaction) -> object:
        return tuple(p.context_key(interaction) for p in self.parts)

    def position_marginals(self, interaction: Interaction, k: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for part, w in zip(self.parts, self.weights):
            for sku, probs in part.position_marginals(interaction, k).items():
                out[sku] = out.get(sku, np.zeros(k)) + w * np.asarray(probs)
        return out

    def list_probability(self, interaction: Interaction) -> float:
        return float(sum(w * p.list_probability(interaction) for p, w in zip(self.parts, self.weights)))


@dataclass
class PlackettLuceTarget:
    name: str
    score_fn: ScoreFn
    temperature: float = 1.0
    num_samples: int = 20_000
    seed: int = 0
    context_key: Callable[[Interaction], object] = _context_key
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def _log_weights(self, interaction: Interaction) -> dict[str, float]:
        scores = self.score_fn(interaction)
        return {sku: s / self.temperature for sku, s in scores.items()}

    def position_marginals(self, interaction: Interaction, k: int) -> dict[str, np.ndarray]:
        key = (self.context_key(interaction), k)
        if key not in self._cache:
            log_w = self._log_weights(interaction)
            skus = sorted(log_w)
            k_eff = min(k, len(skus))
            # A seed per context, so the estimate of one context does not depend on the order
            # in which contexts are met.
            rng = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
            perturbed = np.array([log_w[s] for s in skus]) + rng.gumbel(size=(self.num_samples, len(skus)))
            top = top_k_indices(perturbed, k_eff)
            counts = np.zeros((len(skus), k))
            for pos in range(k_eff):
                counts[:, pos] = np.bincount(top[:, pos], minlength=len(skus))
            self._cache[key] = {s: counts[i] / self.num_samples for i, s in enumerate(skus) if counts[i].any()}
        return self._cache[key]

    def list_probability(self, interaction: Interaction) -> float:
        log_w = self._log_weights(interaction)
        if any(s not in log_w for s in interaction.items) or len(set(interaction.items)) < len(interaction.items):
            return 0.0
        remaining = dict(log_w)
        log_p = 0.0
        for sku in interaction.items:
            values = np.array(list(remaining.values()))
            top = values.max()
            log_p += remaining[sku] - (top + math.log(np.exp(values - top).sum()))
            del remaining[sku]
        return math.exp(log_p)
