"""Does OPE recover the CTR a policy really gets online? Logs from one seed, truth from another.

A Plackett-Luce logger over a lexical score shows K=5 of each query's candidates and logs
clicks with exact list propensities and item-position marginals. Several target policies
are then (a) estimated from those logs with IPS, SNIPS, DM, DR and (b) run online in the
same simulator with a different seed; the table compares the two.

Simulator: `SyntheticSearch` below, a position-based click model (examination falls with
rank, attractiveness per (query, item) correlated with the lexical score but not equal to
it). It stands in for `feedbackrl.tasks.shop.ShopperSimulator` until that is wired in.
The targets are chosen to be supported by the logger (every list has positive logging
probability under Plackett-Luce); a sharper or unrelated target would have lower ESS and
the runner would say so.

    .venv/bin/python benchmarks/ope_validation.py [--logs 20000] [--online 100000] [--bootstrap 100]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from feedbackrl.store.evaluation import LoggedRankings, OPEConfig, evaluate_policy
from feedbackrl.store.schema import Interaction
from feedbackrl.store.target_policies import PlackettLuceTarget, TopKTarget

K = 5
EXAMINATION = np.array([1.0, 0.7, 0.5, 0.35, 0.25])


@dataclass
class SyntheticSearch:
    num_queries: int = 40
    candidates_per_query: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.queries = [f"query {q}" for q in range(self.num_queries)]
        self.candidates = {
            q: [f"sku-{q}-{i}" for i in range(self.candidates_per_query)] for q in range(self.num_queries)
        }
        lexical = rng.normal(size=(self.num_queries, self.candidates_per_query))
        hidden = 0.8 * lexical + 0.7 * rng.normal(size=lexical.shape)
        self.lexical = lexical
        self.attractiveness = 1 / (1 + np.exp(-(-1.2 + hidden)))

    def query_index(self, interaction: Interaction) -> int:
        return int(interaction.query.split()[-1])

    def lexical_scores(self, interaction: Interaction) -> dict[str, float]:
        q = self.query_index(interaction)
        return dict(zip(self.candidates[q], self.lexical[q]))

    def oracle_scores(self, interaction: Interaction) -> dict[str, float]:
        q = self.query_index(interaction)
        return dict(zip(self.candidates[q], np.log(self.attractiveness[q])))

    def click_probabilities(self, q: int, items: list[str]) -> np.ndarray:
        index = {s: i for i, s in enumerate(self.candidates[q])}
        return EXAMINATION[: len(items)] * np.array([self.attractiveness[q, index[s]] for s in items])


def sample_lists(policy, env: SyntheticSearch, n: int, rng: np.random.Generator) -> list[Interaction]:
    """n impressions of `policy` (PL or top-k) on uniformly drawn queries, clicks simulated."""
    out = []
    for i in range(n):
        q = int(rng.integers(env.num_queries))
        context = Interaction(f"imp-{i}", [], [], query=env.queries[q])
        if isinstance(policy, TopKTarget):
            items = policy.ranking(context, K)
        else:
            weights = policy._log_weights(context)
            skus = sorted(weights)
            perturbed = np.array([weights[s] for s in skus]) + rng.gumbel(size=len(skus))
            items = [skus[j] for j in np.argsort(-perturbed)[:K]]
        clicks = rng.random(K) < env.click_probabilities(q, items)
        out.append(Interaction(f"imp-{i}", items, [bool(c) for c in clicks], query=env.queries[q]))
    return out


def make_logs(env: SyntheticSearch, n: int, seed: int) -> tuple[list[Interaction], PlackettLuceTarget]:
    logger = PlackettLuceTarget("logger: pl-lexical T=1", env.lexical_scores, temperature=1.0, num_samples=200_000, seed=seed)
    rng = np.random.default_rng(seed)
    logs = sample_lists(logger, env, n, rng)
    for it in logs:
        marginals = logger.position_marginals(it, K)
        it.position_propensities = [float(marginals[s][k]) for k, s in enumerate(it.items)]
        it.list_propensity = logger.list_probability(it)
        it.policy_version = "pl-lexical@1"
    return logs, logger


def target_policies(env: SyntheticSearch, seed: int) -> list:
    return [
        PlackettLuceTarget("pl-lexical T=0.5", env.lexical_scores, temperature=0.5, seed=seed),
        PlackettLuceTarget("pl-lexical T=2", env.lexical_scores, temperature=2.0, seed=seed),
        PlackettLuceTarget("random (uniform)", lambda it: dict.fromkeys(env.lexical_scores(it), 0.0), seed=seed),
        PlackettLuceTarget("pl-oracle T=0.3", env.oracle_scores, temperature=0.3, seed=seed),
        TopKTarget("top-5 lexical (deterministic)", env.lexical_scores),
    ]


def online_ctr(policy, env: SyntheticSearch, n: int, seed: int) -> float:
    rows = sample_lists(policy, env, n, np.random.default_rng(seed))
    return float(np.mean([np.mean(it.clicks) for it in rows]))


def validate(num_logs: int, num_online: int, bootstrap: int, seed: int = 0) -> list[dict]:
    env = SyntheticSearch(seed=seed)
    logs, _ = make_logs(env, num_logs, seed=seed + 1)
    rankings = LoggedRankings.from_interactions(logs)
    config = OPEConfig(estimators=("ips", "snips", "dm", "dr"), bootstrap_resamples=bootstrap, seed=seed)
    rows = []
    for target in target_policies(env, seed=seed + 2):
        truth = online_ctr(target, env, num_online, seed=seed + 1000)  # another seed than the logs
        report = evaluate_policy(rankings, target, config)
        rows.append({"policy": target.name, "truth": truth, "report": report})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=20_000)
    parser.add_argument("--online", type=int, default=100_000)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = validate(args.logs, args.online, args.bootstrap, args.seed)
    print(f"logged CTR (logger: PL over lexical score, T=1): {rows[0]['report'].meta['logged_ctr']:.4f}; "
          f"{args.logs} logged impressions x {K} positions; truth from {args.online} online impressions, another seed")
    print("| target policy | online CTR | IPS | SNIPS (rel. err) | DM | DR (rel. err) | DR 95% CI | ESS / N |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        e, truth = row["report"].estimates, row["truth"]
        rel = lambda name: (e[name].estimate - truth) / truth  # noqa: E731
        ci = f"[{e['dr'].ci_low:.4f}, {e['dr'].ci_high:.4f}]" if e["dr"].ci_low is not None else "-"
        print(f"| {row['policy']} | {truth:.4f} | {e['ips'].estimate:.4f} | {e['snips'].estimate:.4f} ({rel('snips'):+.1%}) "
              f"| {e['dm'].estimate:.4f} | {e['dr'].estimate:.4f} ({rel('dr'):+.1%}) | {ci} | {row['report'].meta['ess_fraction']:.2f} |")
        for warning in row["report"].warnings:
            print(f"|  | warning: {warning} | | | | | | |")


if __name__ == "__main__":
    main()
