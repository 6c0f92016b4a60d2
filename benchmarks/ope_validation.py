"""Does OPE recover the CTR a policy really gets in the shop? Logs from one seed, truth from another.

Logs: the shop's logging policy, Plackett-Luce over BM25 at temperature 0.5
(`PlackettLuceLogger`, what `feedbackrl shop simulate --policy pl-bm25:0.5 --log` runs),
shows k = 5 products per search to `ShopperSimulator` shoppers (default position-based
model) over days 0-6. Each target is then (a) estimated from those logs by
`evaluate_policy` (IPS, SNIPS, DM, DR on (impression, position) rounds with item-position
marginals) and (b) run online through the same simulator with another seed; its true CTR
is clicks per shown item there (the shop's `ctr`, clicks per session, divided by k).

Logging marginals, `--logging-marginals`:
- `session` (default): the logger's own Monte Carlo marginals recorded with each session
  (`marginal_samples` draws, the shown list counted as one: what `--log` writes);
- `context`: one Monte Carlo estimate per (query, candidate set) with the same +1 rule,
  shared by all of that context's sessions; the same law, ~10x faster (the test uses it).

Targets: Plackett-Luce over BM25 at several temperatures (the logger itself among them),
deterministic BM25 top 5, and an even mixture of the two; these are what the logger
supports (it gives every shown (item, position) of theirs a non-negligible probability).
`oracle` and `random` put most of their mass on products the logger almost never shows;
they are in the table to show what the support warnings are for, not as successes.

    .venv/bin/python benchmarks/ope_validation.py [--logs 14000] [--online 21000] [--bootstrap 100]
        [--logging-marginals session|context] [--marginal-samples 1000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from feedbackrl.store.evaluation import LoggedRankings, OPEConfig, evaluate_policy
from feedbackrl.store.schema import Interaction
from feedbackrl.store.target_policies import MixtureTarget
from feedbackrl.tasks.shop import BM25Ranker, PlackettLuceLogger, TrafficConfig, load_shop_world, make_baseline, simulate_traffic
from feedbackrl.tasks.shop.session_log import session_interactions
from feedbackrl.tasks.shop_target_policies import shop_target

K = 5
DAYS = 7
LOGGING_TEMPERATURE = 0.5
SUPPORTED = ("pl-bm25:0.5", "pl-bm25:0.35", "pl-bm25:0.7", "pl-bm25:1", "bm25", "mix:bm25+pl-bm25:0.5")
UNSUPPORTED = ("oracle", "random")


@dataclass
class MixtureRanker:
    """Shows ranker i's list with probability weights[i] (drawn per search)."""

    name: str
    rankers: list
    weights: list[float]

    def rank(self, query, segment, day, k, rng):
        i = int(rng.choice(len(self.rankers), p=self.weights))
        return self.rankers[i].rank(query, segment, day, k, rng)


def traffic(num_sessions: int, seed: int) -> TrafficConfig:
    return TrafficConfig(days=DAYS, sessions_per_day=max(1, num_sessions // DAYS), k=K, seed=seed)


def logged_interactions(world, bm25, num_sessions: int, seed: int, marginals: str, marginal_samples: int) -> list[Interaction]:
    per_session = marginal_samples if marginals == "session" else 0
    logger = PlackettLuceLogger(world, LOGGING_TEMPERATURE, marginal_samples=per_session, bm25=bm25)
    sessions = simulate_traffic(logger, world, traffic(num_sessions, seed), np.random.default_rng(seed))
    interactions = list(session_interactions(sessions, prefix=logger.name))
    if marginals == "context":
        law = shop_target(logger.name, world, seed=seed + 7, num_samples=marginal_samples, bm25=bm25)
        for it in interactions:
            m = law.position_marginals(it, K)
            # (hits + 1) / (samples + 1), as PlackettLuceLogger does: never 0 for a shown item.
            it.position_propensities = [
                (float(m[s][k]) * marginal_samples + 1.0) / (marginal_samples + 1.0) if s in m else 1.0 / (marginal_samples + 1.0)
                for k, s in enumerate(it.items)
            ]
    return interactions


def target_and_ranker(name: str, world, bm25, rankings: LoggedRankings, seed: int, num_samples: int):
    """The OPE target and the online ranker that is the same policy."""
    if name.startswith("mix:"):
        parts = name[4:].split("+")
        pairs = [target_and_ranker(p, world, bm25, rankings, seed, num_samples) for p in parts]
        weights = [1.0 / len(parts)] * len(parts)
        label = " + ".join(f"{w:g} {p}" for w, p in zip(weights, parts))
        return (MixtureTarget(label, [t for t, _ in pairs], weights),
                MixtureRanker(label, [r for _, r in pairs], weights))
    target = shop_target(name, world, rankings, seed=seed, num_samples=num_samples, bm25=bm25)
    if name.startswith("pl-bm25"):
        ranker = PlackettLuceLogger(world, float(name.partition(":")[2]), bm25=bm25)
    elif name == "bm25":
        ranker = bm25
    else:
        ranker = make_baseline(name, world)
    return target, ranker


def online_ctr(ranker, world, num_sessions: int, seed: int) -> float:
    """Clicks per shown item when the policy itself serves the shoppers."""
    sessions = simulate_traffic(ranker, world, traffic(num_sessions, seed), np.random.default_rng(seed))
    return float(sum(sum(s.clicks) for s in sessions) / sum(len(s.skus) for s in sessions))


def validate(num_logs: int, num_online: int, bootstrap: int, seed: int = 0, names=SUPPORTED + UNSUPPORTED,
             logging_marginals: str = "session", marginal_samples: int = 1000, target_samples: int = 20_000) -> list[dict]:
    world = load_shop_world()
    bm25 = BM25Ranker(world)
    logs = logged_interactions(world, bm25, num_logs, seed + 1, logging_marginals, marginal_samples)
    rankings = LoggedRankings.from_interactions(logs, source="pl-bm25:0.5 logs")
    config = OPEConfig(estimators=("ips", "snips", "dm", "dr"), bootstrap_resamples=bootstrap, seed=seed)
    rows = []
    for name in names:
        target, ranker = target_and_ranker(name, world, bm25, rankings, seed + 2, target_samples)
        truth = online_ctr(ranker, world, num_online, seed + 1000)  # another seed than the logs
        rows.append({"policy": name, "label": target.name, "truth": truth, "report": evaluate_policy(rankings, target, config)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=14_000, help="logged sessions (days 0-6)")
    parser.add_argument("--online", type=int, default=21_000, help="online sessions per target for the truth")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logging-marginals", choices=("session", "context"), default="session")
    parser.add_argument("--marginal-samples", type=int, default=1000)
    args = parser.parse_args()
    start = time.time()
    rows = validate(args.logs, args.online, args.bootstrap, args.seed, logging_marginals=args.logging_marginals,
                    marginal_samples=args.marginal_samples)
    meta = rows[0]["report"].meta
    print(f"logs: {meta['impressions']} sessions x {K} positions from pl-bm25:{LOGGING_TEMPERATURE:g} "
          f"(logged CTR {meta['logged_ctr']:.4f}; {args.logging_marginals} marginals, {args.marginal_samples} samples); "
          f"truth from {args.online} online sessions per target, another seed; {time.time() - start:.0f} s")
    print("| target policy | online CTR | IPS | SNIPS (rel. err) | DM (rel. err) | DR (rel. err) | DR 95% CI | ESS / N | unlogged mass |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for row in rows:
        e, truth, m = row["report"].estimates, row["truth"], row["report"].meta
        rel = lambda name: (e[name].estimate - truth) / truth  # noqa: E731
        ci = f"[{e['dr'].ci_low:.4f}, {e['dr'].ci_high:.4f}]" if e["dr"].ci_low is not None else "-"
        print(f"| {row['label']} | {truth:.4f} | {e['ips'].estimate:.4f} | {e['snips'].estimate:.4f} ({rel('snips'):+.1%}) "
              f"| {e['dm'].estimate:.4f} ({rel('dm'):+.1%}) | {e['dr'].estimate:.4f} ({rel('dr'):+.1%}) | {ci} "
              f"| {m['ess_fraction']:.2f} | {m['unsupported_target_mass']:.2f} |")
    for row in rows:
        for warning in row["report"].warnings:
            print(f"- {row['label']}: {warning}")


if __name__ == "__main__":
    main()
