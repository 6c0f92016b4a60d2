"""Target policies for OPE built from a scoring function: deterministic top-k and Plackett-Luce.

A ranking policy that scores candidates (BM25, popularity, a utility oracle) becomes a
`TargetPolicy` (see `evaluation.py`) in one of two ways:

- `TopKTarget`: show the k best-scoring candidates. Its item-position marginals are one-hot,
  its probability of a logged list is 1 or 0.
- `PlackettLuceTarget`: draw k items without replacement, each with probability
  proportional to exp(score / temperature) among those left (Plackett 1975, Luce 1959).
  The probability of a list is the product of those choice probabilities (exact). The
  item-position marginals have no closed form for k > 1, so they are estimated by sampling
  lists with the Gumbel-top-k trick (adding Gumbel noise to log-weights and sorting draws
  exactly from Plackett-Luce; Kool et al. 2019), `num_samples` per context, cached.

Scores come from `score_fn(interaction) -> {sku: score}` over the candidates of that
context; the candidate set is whatever the function returns.
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
            top = np.argsort(-perturbed, axis=1)[:, :k_eff]
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
