"""Open Bandit Dataset: estimate Thompson sampling's CTR from the random policy's logs.

For each campaign, BTS (the target) is evaluated with IPS, SNIPS, DM and DR on the 10,000
rows logged by the uniform-random policy, and compared with BTS's own logged CTR (its
10,000 on-policy rows of the same period). Prints a Markdown table for docs/offline.md.

    .venv/bin/python benchmarks/obd_table.py [--bootstrap 200] [--sources logged,prior,empirical]
"""

from __future__ import annotations

import argparse

from feedbackrl.store.evaluation import LoggedRankings, OPEConfig, evaluate_policy
from feedbackrl.tasks import obp_logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--sources", default="logged,prior,empirical")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = OPEConfig(estimators=("ips", "snips", "dm", "dr"), bootstrap_resamples=args.bootstrap, seed=args.seed)
    print("| campaign | BTS probabilities | on-policy CTR (± s.e.) | random's CTR | IPS [95% CI] | SNIPS [95% CI] | DM | DR [95% CI] | ESS / N |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for campaign in obp_logs.CAMPAIGNS:
        logs = LoggedRankings.from_interactions(obp_logs.read_obd("random", campaign))
        truth, stderr = obp_logs.on_policy_ctr("bts", campaign)
        for source in args.sources.split(","):
            target = obp_logs.ObdSlotPolicy(f"bts-{source}", obp_logs.bts_slot_probs(campaign, source, seed=args.seed))
            report = evaluate_policy(logs, target, config)
            e = report.estimates

            def cell(name: str) -> str:
                r = e[name]
                return f"{r.estimate * 100:.3f}% [{r.ci_low * 100:.3f}, {r.ci_high * 100:.3f}]"

            print(
                f"| {campaign} | {source} | {truth * 100:.3f}% ± {stderr * 100:.3f} | {report.meta['logged_ctr'] * 100:.3f}% "
                f"| {cell('ips')} | {cell('snips')} | {e['dm'].estimate * 100:.3f}% | {cell('dr')} "
                f"| {report.meta['ess_fraction']:.2f} |"
            )


if __name__ == "__main__":
    main()
