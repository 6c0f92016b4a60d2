"""Several rewards as one: weighted sum, optional per-batch z-scores, and hard gates.

For each sample, with c_i the component scores:

    total = sum_i weight_i * v_i      v_i = c_i, or (c_i - mean_batch) / std_batch if normalize

Gates. A component with `gate=True` *fails* when its score is below `gate_threshold`
(default 1.0, i.e. anything short of a clean pass). A failed gate sets the total to exactly
`floor` (default 0.0; e.g. -1.0 to punish), whatever the other components say: a completion
that leaks a card number gets no credit for a correct answer. A gate contributes to the sum
only if given a weight (its default weight is 0; other components default to 1).

Errors. A component whose check could not run (timeout, sandbox failure) leaves the total
unknown, so the sample gets `error="<component>: <error>"` and the loop masks it, with one
exception: a gate that *failed* decides the total on its own, so the sample is scored `floor`
even if another component errored. An errored gate is an error too (we cannot tell whether
the text would have passed, and rewarding it could teach the behaviour the gate forbids).

Normalisation: z-scores use the batch's error-free values of that component (population
std); a component constant over the batch contributes 0, not a division by zero.

details: components {name: raw score or None}, normalized {name: z} (normalised components
only), gate_failed (first failed gate or None), gates_failed, errors {name: error},
by_component {name: that component's own details}, total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from feedbackrl.rewards.base import RewardFn, RewardResult
from feedbackrl.rewards.registry import REWARDS, get_reward, register_reward  # noqa: F401 - re-exported
from feedbackrl.sample import Sample


@dataclass
class Component:
    name: str
    reward: RewardFn
    # None means 1.0 for an ordinary component and 0.0 for a gate (a gate is a filter, not a bonus).
    weight: float | None = None
    normalize: bool = False  # z-score this component over the batch before weighting
    gate: bool = False
    gate_threshold: float = 1.0  # a gate fails when its score is below this

    @property
    def effective_weight(self) -> float:
        if self.weight is not None:
            return self.weight
        return 0.0 if self.gate else 1.0


@dataclass
class ComponentConfig:
    """One component as config data: `reward` is a registry key, `args` its keyword arguments."""

    reward: str
    name: str | None = None  # defaults to the registry key
    weight: float | None = None
    normalize: bool = False
    gate: bool = False
    gate_threshold: float = 1.0
    args: dict = field(default_factory=dict)


@dataclass
class CombinedRewardConfig:
    components: list[ComponentConfig]
    floor: float = 0.0  # the total of a sample whose gate failed
    name: str = "combined"


def _z_scores(values: list[float | None]) -> list[float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return values
    mean = sum(present) / len(present)
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / len(present))
    return [None if v is None else ((v - mean) / std if std > 0 else 0.0) for v in values]


def _run_component(component: Component, samples: Sequence[Sample]) -> list[RewardResult]:
    try:
        results = component.reward(samples)
    except Exception as e:  # noqa: BLE001 - one broken component must not kill the batch
        return [RewardResult(0.0, {}, f"{type(e).__name__}: {e}") for _ in samples]
    if len(results) != len(samples):
        raise ValueError(f"component {component.name!r} returned {len(results)} results for {len(samples)} samples")
    return list(results)


class CombinedReward:
    """A `RewardFn` combining named components; see the module docstring for the rules."""

    def __init__(self, components: Sequence[Component], floor: float = 0.0, name: str = "combined") -> None:
        if not components:
            raise ValueError("a combined reward needs at least one component")
        names = [c.name for c in components]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"component names must be unique; repeated: {duplicates}")
        self.components = list(components)
        self.floor = floor
        self.name = name

    @classmethod
    def from_config(cls, components: Sequence[Mapping[str, Any] | ComponentConfig] | Mapping[str, Any] | CombinedRewardConfig,
                    floor: float | None = None, name: str | None = None) -> CombinedReward:
        """Build from config data: a list of component dicts, or {components, floor, name}.

        Each component dict: {reward: <registry key>, name, weight, normalize, gate,
        gate_threshold, args: {...}}; unknown keys are a one-line ValueError.
        """
        config = parse_combined_config(components)
        built = []
        for c in config.components:
            built.append(Component(name=c.name or c.reward, reward=get_reward(c.reward, **c.args), weight=c.weight,
                                   normalize=c.normalize, gate=c.gate, gate_threshold=c.gate_threshold))
        return cls(built, floor=config.floor if floor is None else floor, name=name or config.name)

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        per_component = {c.name: _run_component(c, samples) for c in self.components}
        scores = {
            c.name: [None if r.error else float(r.score) for r in per_component[c.name]] for c in self.components
        }
        normalized = {c.name: _z_scores(scores[c.name]) for c in self.components if c.normalize}
        return [self._combine(i, per_component, scores, normalized) for i in range(len(samples))]

    def _combine(self, i: int, per_component: dict, scores: dict, normalized: dict) -> RewardResult:
        errors = {name: results[i].error for name, results in per_component.items() if results[i].error}
        gates_failed = [c.name for c in self.components
                        if c.gate and scores[c.name][i] is not None and scores[c.name][i] < c.gate_threshold]
        details: dict[str, Any] = {
            "components": {name: values[i] for name, values in scores.items()},
            "normalized": {name: values[i] for name, values in normalized.items()},
            "gate_failed": gates_failed[0] if gates_failed else None,
            "gates_failed": gates_failed,
            "errors": errors,
            "by_component": {name: results[i].details for name, results in per_component.items()},
        }
        if gates_failed:
            details["total"] = self.floor
            return RewardResult(self.floor, details)
        if errors:
            first = next(iter(errors))
            details["total"] = None
            return RewardResult(0.0, details, f"{first}: {errors[first]}")
        total = 0.0
        for c in self.components:
            value = normalized[c.name][i] if c.normalize else scores[c.name][i]
            total += c.effective_weight * value
        details["total"] = total
        return RewardResult(total, details)

    def component_means(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Mean raw score per component over scored samples (see `component_means`)."""
        means = component_means(samples)
        return {c.name: means[c.name] for c in self.components if c.name in means}


def component_means(samples: Sequence[Sample]) -> dict[str, float]:
    """Mean of each component's raw score over samples scored by a `CombinedReward`.

    Reads `sample.details["components"]`; errored values (None) are left out. Also reports
    `gate_failed/<name>`: the fraction of samples whose gate `<name>` failed.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    gate_failures: dict[str, int] = {}
    n_with_components = 0
    for s in samples:
        components = s.details.get("components") if isinstance(s.details, dict) else None
        if not isinstance(components, dict):
            continue
        n_with_components += 1
        for name, value in components.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sums[name] = sums.get(name, 0.0) + float(value)
                counts[name] = counts.get(name, 0) + 1
        for name in s.details.get("gates_failed") or []:
            gate_failures[name] = gate_failures.get(name, 0) + 1
    means = {name: sums[name] / counts[name] for name in sums}
    for name, n in gate_failures.items():
        means[f"gate_failed/{name}"] = n / n_with_components
    return means


_COMPONENT_KEYS = set(ComponentConfig.__dataclass_fields__)


def parse_combined_config(data: Sequence[Mapping[str, Any] | ComponentConfig] | Mapping[str, Any] | CombinedRewardConfig) -> CombinedRewardConfig:
    """Typed config from plain data (as loaded from YAML), with one-line errors."""
    if isinstance(data, CombinedRewardConfig):
        return data
    floor, name = 0.0, "combined"
    if isinstance(data, Mapping):
        unknown = set(data) - {"components", "floor", "name"}
        if unknown:
            raise ValueError(f"combined reward: unknown keys {sorted(unknown)}; expected components, floor, name")
        floor, name = float(data.get("floor", 0.0)), str(data.get("name", "combined"))
        data = data.get("components") or []
    components = []
    for i, item in enumerate(data):
        if isinstance(item, ComponentConfig):
            components.append(item)
            continue
        if not isinstance(item, Mapping) or "reward" not in item:
            raise ValueError(f"combined reward: component {i} needs a 'reward' key naming a registered reward")
        unknown = set(item) - _COMPONENT_KEYS
        if unknown:
            raise ValueError(f"combined reward: component {i} has unknown keys {sorted(unknown)}; expected {sorted(_COMPONENT_KEYS)}")
        components.append(ComponentConfig(**dict(item)))
    if not components:
        raise ValueError("combined reward: 'components' is empty")
    return CombinedRewardConfig(components, floor=floor, name=name)
