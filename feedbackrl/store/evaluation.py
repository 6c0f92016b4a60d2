"""The off-policy evaluation runner: logged rankings + a target policy -> estimates with CIs.

The estimators themselves (IPS, SNIPS, DM, DR, position-based IPS, ESS, bootstrap) live in
`feedbackrl.algos.offpolicy`; this module only gathers what they need from a log:

- the *unit* of evaluation. `position` (default): each (impression, position) is a round
  whose reward is the click there and whose weight is
      pi_target(item at k | x) / pi_logging(item at k | x),
  the item-position marginals. This is unbiased when clicks follow a position-based model
  (the click at k depends only on the item at k), which both the shop simulator and the
  Open Bandit Dataset satisfy, and its weights stay small. `list`: each impression is a
  round with reward = clicks per shown item and weight = ratio of whole-list probabilities;
  unbiased for any click model, but a deterministic target matches a logged list rarely
  and the variance is huge.
- the target's probabilities, from a `TargetPolicy` (see its docstring);
- a reward model for DM and DR, `PositionBasedClickModel`, fitted on the same logs;
- bootstrap confidence intervals that resample *impressions* (positions of one list are
  not independent draws), and support diagnostics.

Every estimate is a click-through rate: expected clicks per shown item.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Literal, Protocol

import numpy as np

from feedbackrl.store.click_model import PositionBasedClickModel
from feedbackrl.store.schema import Interaction, LogFormatError

ESTIMATORS = ("ips", "snips", "dm", "dr", "pbips")


class TargetPolicy(Protocol):
    name: str

    def position_marginals(self, interaction: Interaction, k: int) -> dict[str, np.ndarray]:
        """For the context of `interaction`: item -> [k] probabilities that the target shows it
        at each of the first k positions. Items left out have probability 0 everywhere."""

    def list_probability(self, interaction: Interaction) -> float:
        """Probability that the target shows exactly `interaction.items`, in that order."""

    def context_key(self, interaction: Interaction) -> object:
        """Hashable key such that equal keys give equal distributions (used to cache them)."""


@dataclass
class OPEConfig:
    estimators: tuple[str, ...] = ESTIMATORS
    unit: Literal["position", "list"] = "position"
    bootstrap_resamples: int = 200  # 0: no confidence intervals
    alpha: float = 0.05  # two-sided; 0.05 gives 95% intervals
    clip_max: float | None = None  # cap on importance weights (trades bias for variance)
    seed: int = 0
    prior_strength: float = 10.0  # smoothing of the click model behind DM and DR
    # Support diagnostics: warn when one of these is crossed.
    min_ess_fraction: float = 0.1  # effective sample size / rounds
    min_propensity: float = 1e-3  # a logging probability below this counts as "tiny"
    max_unsupported_mass: float = 0.02  # target mass on (item, position) pairs the logs lack

    def validate(self) -> None:
        unknown = [e for e in self.estimators if e not in ESTIMATORS]
        if unknown:
            raise ValueError(f"unknown estimator(s) {', '.join(unknown)}; choose from {', '.join(ESTIMATORS)}")
        if self.unit not in ("position", "list"):
            raise ValueError(f"unit must be 'position' or 'list', got {self.unit!r}")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")


@dataclass
class EstimateResult:
    estimate: float
    ci_low: float | None
    ci_high: float | None
    ess: float | None  # effective sample size of the weights; None for DM, which has none


@dataclass
class OPEReport:
    estimates: dict[str, EstimateResult]
    warnings: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out: dict = {name: asdict(result) for name, result in self.estimates.items()}
        out["meta"] = dict(self.meta, warnings=list(self.warnings))
        return out


@dataclass
class LoggedRankings:
    """A log as arrays: N impressions of K positions each."""

    interactions: list[Interaction]
    query_keys: list[str]
    clicks: np.ndarray  # [N, K] 0/1
    logging_marginals: np.ndarray  # [N, K]; nan where the log has none
    logging_list_logprob: np.ndarray  # [N]; nan where the log has none

    @classmethod
    def from_interactions(cls, interactions: Iterable[Interaction], source: str = "logs") -> "LoggedRankings":
        kept: list[Interaction] = []
        k = None
        for it in interactions:
            if k is None:
                k = len(it.items)
            elif len(it.items) != k:
                raise LogFormatError(
                    f"{source}: column 'items' (impression {it.impression_id!r}): OPE needs lists of one length; found {len(it.items)} and {k}"
                )
            kept.append(it)
        if not kept:
            raise LogFormatError(f"{source}: the log has no impressions")
        nan_row = [math.nan] * k
        return cls(
            interactions=kept,
            query_keys=[query_key(it) for it in kept],
            clicks=np.array([[float(c) for c in it.clicks] for it in kept]),
            logging_marginals=np.array([it.position_propensities or nan_row for it in kept], dtype=np.float64),
            logging_list_logprob=np.array([_list_logprob(it) for it in kept]),
        )

    @property
    def num_positions(self) -> int:
        return self.clicks.shape[1]


def _list_logprob(it: Interaction) -> float:
    if it.list_log_propensity is not None:
        return float(it.list_log_propensity)
    if it.list_propensity:
        return math.log(it.list_propensity)
    return math.nan


def query_key(interaction: Interaction) -> str:
    """What the click model and support checks treat as 'the same context'."""
    return interaction.query or ""


@dataclass
class TargetProbabilities:
    marginals: np.ndarray  # [N, K] target marginal of the logged item at each logged position
    list_probability: np.ndarray  # [N]
    predicted_target: np.ndarray  # [N, K] click model's CTR at k, averaged over the target's items
    predicted_logged: np.ndarray  # [N, K] click model's CTR of the logged item at k
    unsupported_mass: float  # share of target (item, position) mass the logs never show
    tiny_propensity_mass: float  # share of target mass on pairs logged only with tiny propensity


def target_probabilities(
    logs: LoggedRankings, target: TargetPolicy, model: PositionBasedClickModel, config: OPEConfig
) -> TargetProbabilities:
    n, k = logs.clicks.shape
    # Largest logging marginal seen for each (query, item, position): the empirical support.
    support: dict[tuple[str, str, int], float] = {}
    for query, it, props in zip(logs.query_keys, logs.interactions, logs.logging_marginals):
        for pos, sku in enumerate(it.items):
            p = 1.0 if math.isnan(props[pos]) else float(props[pos])
            key = (query, sku, pos)
            support[key] = max(support.get(key, 0.0), p)

    marginals = np.zeros((n, k))
    list_probability = np.zeros(n)
    predicted_target = np.zeros((n, k))
    predicted_logged = np.zeros((n, k))
    unsupported = tiny = 0.0
    cache: dict[object, tuple[dict[str, np.ndarray], np.ndarray, float, float]] = {}
    for row, (query, it) in enumerate(zip(logs.query_keys, logs.interactions)):
        key = (target.context_key(it), query)
        if key not in cache:
            dist = target.position_marginals(it, k)
            expected = np.zeros(k)
            outside = small = 0.0
            for sku, probs in dist.items():
                for pos in range(k):
                    p = float(probs[pos])
                    if p <= 0.0:
                        continue
                    expected[pos] += p * model.click_probability(query, sku, pos)
                    logged_p = support.get((query, sku, pos))
                    if logged_p is None:
                        outside += p
                    elif logged_p < config.min_propensity:
                        small += p
            cache[key] = (dist, expected, outside, small)
        dist, expected, outside, small = cache[key]
        predicted_target[row] = expected
        unsupported += outside
        tiny += small
        for pos, sku in enumerate(it.items):
            probs = dist.get(sku)
            marginals[row, pos] = 0.0 if probs is None else float(probs[pos])
            predicted_logged[row, pos] = model.click_probability(query, sku, pos)
        if "list" == config.unit:
            list_probability[row] = target.list_probability(it)
    return TargetProbabilities(
        marginals, list_probability, predicted_target, predicted_logged,
        unsupported_mass=unsupported / (n * k), tiny_propensity_mass=tiny / (n * k),
    )


def evaluate_policy(logs: LoggedRankings, target: TargetPolicy, config: OPEConfig | None = None) -> OPEReport:
    """Estimate the target's CTR from the logs with each configured estimator."""
    import torch

    from feedbackrl.algos import offpolicy as op

    config = config or OPEConfig()
    config.validate()
    n, k = logs.clicks.shape
    needs_marginals = config.unit == "position" or "pbips" in config.estimators
    if needs_marginals and np.isnan(logs.logging_marginals).any():
        raise LogFormatError(
            "logs: column 'position_propensities' is missing for some impressions; position-level OPE needs it"
            " (shop logs: `feedbackrl shop simulate --set marginal_samples=1000 --log ...` records them)"
        )
    if config.unit == "list" and np.isnan(logs.logging_list_logprob).any():
        raise LogFormatError("logs: column 'list_log_propensity' is missing for some impressions; list-level OPE needs it")

    model = PositionBasedClickModel(prior_strength=config.prior_strength).fit(logs.query_keys, [it.items for it in logs.interactions], logs.clicks)
    probs = target_probabilities(logs, target, model, config)

    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    clicks, target_marg, logging_marg = t(logs.clicks), t(probs.marginals), t(logs.logging_marginals)
    pred_target, pred_logged = t(probs.predicted_target), t(probs.predicted_logged)
    clip = config.clip_max
    # index_select, not a[idx]: advanced indexing is ~100x slower and the bootstrap calls this
    # (estimators x resamples) times.
    pick = lambda a, idx: a.index_select(0, idx)  # noqa: E731

    if config.unit == "position":
        # Rounds are (impression, position): flatten [idx, K] -> [len(idx) * K].
        def rounds(idx):
            return tuple(pick(a, idx).reshape(-1) for a in (clicks, target_marg, logging_marg, pred_logged, pred_target))
    else:
        target_list, logging_list = t(probs.list_probability), torch.exp(t(logs.logging_list_logprob))

        def rounds(idx):
            return (pick(clicks, idx).mean(1), pick(target_list, idx), pick(logging_list, idx),
                    pick(pred_logged, idx).mean(1), pick(pred_target, idx).mean(1))

    def estimator(name: str):
        def run(idx) -> float:
            r, tp, lp, rl, rt = rounds(idx)
            if name == "ips":
                return op.ips_estimate(r, tp, lp, clip_max=clip)
            if name == "snips":
                return op.snips_estimate(r, tp, lp, clip_max=clip)
            if name == "dm":
                return op.direct_method_estimate(rt)
            if name == "dr":
                return op.doubly_robust_estimate(r, tp, lp, rl, rt, clip_max=clip)
            # Position-based IPS sums clicks over positions; divide by K for clicks per shown item.
            return op.position_based_ips(pick(clicks, idx), pick(target_marg, idx), pick(logging_marg, idx), clip_max=clip) / k
        return run

    everyone = torch.arange(n)
    _, tp_all, lp_all, _, _ = rounds(everyone)
    weights = tp_all / lp_all
    if clip is not None:
        weights = weights.clamp(max=clip)
    ess = float(op.effective_sample_size(weights))
    position_weights = (target_marg / logging_marg).reshape(-1)
    if clip is not None:
        position_weights = position_weights.clamp(max=clip)
    position_ess = float(op.effective_sample_size(position_weights))

    estimates: dict[str, EstimateResult] = {}
    for name in config.estimators:
        run = estimator(name)
        value = float(run(everyone))
        low = high = None
        if config.bootstrap_resamples > 0:
            low, high = op.bootstrap_ci(run, n, num_resamples=config.bootstrap_resamples, alpha=config.alpha, seed=config.seed)
            low, high = float(low), float(high)
        weight_ess = None if name == "dm" else (position_ess if name == "pbips" else ess)
        estimates[name] = EstimateResult(value, low, high, weight_ess)

    num_rounds = len(weights)
    warnings = support_warnings(
        ess=ess, num_rounds=num_rounds, probs=probs, logging=logs.logging_marginals,
        target=probs.marginals, config=config,
    )
    meta = {
        "target": target.name,
        "unit": config.unit,
        "impressions": n,
        "positions": k,
        "rounds": num_rounds,
        "logged_ctr": float(logs.clicks.mean()),
        "ess_fraction": ess / num_rounds,
        "unsupported_target_mass": probs.unsupported_mass,
        "tiny_propensity_target_mass": probs.tiny_propensity_mass,
        "max_weight": float(weights.max()),
        "bootstrap_resamples": config.bootstrap_resamples,
        "alpha": config.alpha,
    }
    return OPEReport(estimates, warnings, meta)


def support_warnings(*, ess, num_rounds, probs: TargetProbabilities, logging, target, config: OPEConfig) -> list[str]:
    """Plain-language reasons not to trust the estimates."""
    warnings = []
    if ess / num_rounds < config.min_ess_fraction:
        warnings.append(
            f"effective sample size {ess:.1f} is {ess / num_rounds:.1%} of {num_rounds} rounds"
            f" (< {config.min_ess_fraction:.0%}): the target differs a lot from the logger, IPS/SNIPS/DR are noisy"
        )
    if probs.unsupported_mass > config.max_unsupported_mass:
        warnings.append(
            f"{probs.unsupported_mass:.1%} of the target's (item, position) mass is on pairs the logs never show"
            " for that query: either the logger cannot show them (IPS/SNIPS then miss them: biased) or too few"
            " impressions were logged to meet them (unbiased, but noisy); DM/DR rely on the click model there"
        )
    if probs.tiny_propensity_mass > config.max_unsupported_mass:
        warnings.append(
            f"{probs.tiny_propensity_mass:.1%} of the target's mass is on pairs logged with propensity"
            f" < {config.min_propensity:g}: a few huge weights will dominate"
        )
    logged_tiny = np.nan_to_num(logging, nan=1.0) < config.min_propensity
    if logged_tiny.any() and (target[logged_tiny] > 0).any():
        share = float(logged_tiny.mean())
        warnings.append(f"{share:.2%} of logged rounds have propensity < {config.min_propensity:g} and non-zero target probability")
    return warnings
