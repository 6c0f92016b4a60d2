"""Offline RL on the shop, end to end: logs of a randomised logger -> offline training -> true CTR.

1. Historical logs: `sessions` shoppers search with the *training* phrasings of the intents and
   are shown lists drawn by the Plackett-Luce logging policy over BM25 (temperature 0.5),
   whose list propensities are recorded; the shopper simulator decides clicks. The sessions
   become store interactions (`session_interactions`) and then tuples and preference pairs
   (`feedbackrl.store.convert`), written as Parquet exactly as `feedbackrl logs convert` does.
2. Offline training (`feedbackrl.train.offline.train_offline`, no generation, no simulator):
   a tiny model is built, warm-started by behaviour cloning of the logged lists, then
   trained by the chosen method.
3. True CTR on the *held-out* phrasings, never in the logs: the policy's greedy lists
   (constrained to catalog SKUs) are shown to `eval_shoppers` simulated shoppers per prompt
   with a seed other than the logs'; the logger is measured on the same prompts and shoppers
   with `logger_draws` of its random lists per prompt. BM25, the behaviour-cloned policy and
   the oracle are printed for context.

    python benchmarks/offline_shop.py                       # AWR, the default
    python benchmarks/offline_shop.py --method dpo --sessions 4000
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from feedbackrl.config import from_dict
from feedbackrl.sample import Sample
from feedbackrl.store.convert import RewardWeights, to_preference_pairs, to_tuples, write_records
from feedbackrl.tasks.shop import OracleRanker, PlackettLuceLogger, ShopTask, ShopTaskConfig, render_completion
from feedbackrl.tasks.shop.session_log import session_interactions
from feedbackrl.tasks.shop.simulator import ShopperSimulator
from feedbackrl.tasks.shop.traffic import simulate_session
from feedbackrl.train.offline import OfflineConfig, train_offline

LOGGING_TEMPERATURE = 0.5
# The reward of a logged list is its clicks: the figure the experiment reports is CTR.
CLICKS_ONLY = RewardWeights(click=1.0, add_to_cart=0.0, purchase=0.0)


def write_logs(task: ShopTask, sessions: int, out: Path, seed: int) -> dict:
    """Logging-policy sessions on training phrasings -> tuples.parquet and pairs.parquet in `out`."""
    world = task.world
    logger = PlackettLuceLogger(world, LOGGING_TEMPERATURE)
    simulator = ShopperSimulator(task.config.reward.shoppers)
    rng = np.random.default_rng(seed)
    weights = np.asarray([it.traffic for it in world.intents], dtype=np.float64)
    weights /= weights.sum()
    records = []
    for _ in range(sessions):
        intent = world.intents[int(rng.choice(len(world.intents), p=weights))]
        query = intent.train_phrasings[int(rng.integers(len(intent.train_phrasings)))]
        records.append(simulate_session(world, simulator, logger, intent, query, task.day, task.config.k, rng))
    interactions = list(session_interactions(records, prefix="offline-shop"))
    out.mkdir(parents=True, exist_ok=True)
    n_tuples = write_records(out / "tuples.parquet", to_tuples(interactions, CLICKS_ONLY))
    n_pairs = write_records(out / "pairs.parquet", to_preference_pairs(interactions))
    return {"sessions": sessions, "tuples": n_tuples, "pairs": n_pairs,
            "logged_ctr_train_phrasings": float(np.mean([sum(r.clicks) for r in records]))}


def seen_prompts(task: ShopTask, per_intent: int = 2) -> list:
    """Prompts of the first training phrasings of each intent: wording that is in the logs."""
    return [task._prompt(it, q) for it in task.world.intents for q in it.train_phrasings[:per_intent]]


def ranker_ctr(task: ShopTask, ranker, draws: int, seed: int, prompts=None) -> dict[str, float]:
    """Task metrics of a ranker's lists for every held-out prompt (`draws` lists per prompt)."""
    rng = np.random.default_rng(seed)
    samples = []
    for p in prompts if prompts is not None else task.eval_prompts():
        q = p.reference
        for _ in range(draws):
            ranked = ranker.rank(q.query, q.segment, q.day, task.config.k, rng)
            samples.append(Sample(prompt=p.text, completion=render_completion(ranked.skus), reference=q))
    return task.evaluate(samples)


def offline_config(method: str, data_dir: Path, out_dir: Path, *, epochs: int, warm_start_steps: int,
                   eval_seed: int, eval_shoppers: int, seed: int) -> OfflineConfig:
    data = data_dir / ("pairs.parquet" if method in ("dpo", "ipo") else "tuples.parquet")
    return from_dict(OfflineConfig, {
        "name": f"offline-shop-{method}", "out_dir": str(out_dir), "seed": seed, "method": method,
        "data": [str(data)], "completion_prefix": " ", "task": "shop",
        "shop": {"eval_seed": eval_seed, "eval_shoppers": eval_shoppers},
        "generation": {"max_new_tokens": 6},
        "warm_start": {"steps": warm_start_steps, "source": "all", "batch_size": 64, "lr": 3e-3},
        "weighted": {"temperature": 0.5, "max_weight": 20.0, "normalise": "batch"},
        "dpo": {"beta": 0.1},
        "opg": {"clip_max": 10.0, "baseline": "prompt_mean"},
        "optim": {"lr": 5e-4, "max_grad_norm": 1.0},
        "epochs": epochs, "batch_size": 64, "progress": False,
    }, "offline_shop")


def run(method: str = "awr", sessions: int = 6000, epochs: int = 3, warm_start_steps: int = 300,
        out_dir: str = "runs/offline_shop", seed: int = 0, eval_seed: int = 4321, eval_shoppers: int = 64,
        logger_draws: int = 16, log=print) -> dict:
    t0 = time.perf_counter()
    task = ShopTask(ShopTaskConfig(eval_seed=eval_seed, eval_shoppers=eval_shoppers))
    out = Path(out_dir)
    logs = write_logs(task, sessions, out / "data", seed)
    log(f"logs: {logs['sessions']} sessions on training phrasings -> {logs['tuples']} tuples, {logs['pairs']} pairs "
        f"(logged CTR {logs['logged_ctr_train_phrasings']:.3f})")
    world = task.world
    logger_eval = ranker_ctr(task, PlackettLuceLogger(world, LOGGING_TEMPERATURE), logger_draws, eval_seed)
    bm25_eval = ranker_ctr(task, task._bm25_ranker(), 1, eval_seed)
    oracle_eval = ranker_ctr(task, OracleRanker(world), 1, eval_seed)
    cfg = offline_config(method, out / "data", out, epochs=epochs, warm_start_steps=warm_start_steps,
                         eval_seed=eval_seed, eval_shoppers=eval_shoppers, seed=seed)
    summary = train_offline(cfg, log=log, task=task)
    policy_ctr = summary["eval"]["ctr"]
    # The same measurement on wording the logs contain: how much of the gap is generalisation.
    from feedbackrl.policy.model import Policy
    from feedbackrl.train.offline import policy_samples

    seen = seen_prompts(task)
    policy_seen = task.evaluate(policy_samples(Policy.load(summary["checkpoint"]).eval(), task, seen, 6))
    logger_seen = ranker_ctr(task, PlackettLuceLogger(world, LOGGING_TEMPERATURE), logger_draws, eval_seed, seen)
    result = {
        "method": method, "logs": logs, "held_out_prompts": len(task.eval_prompts()),
        "ctr": {"logger": logger_eval["ctr"], "bm25": bm25_eval["ctr"], "oracle": oracle_eval["ctr"],
                "behaviour_cloned": summary["eval_before"]["ctr"], "offline_policy": policy_ctr},
        "ndcg@5": {"logger": logger_eval["ndcg@5"], "bm25": bm25_eval["ndcg@5"],
                   "behaviour_cloned": summary["eval_before"]["ndcg@5"], "offline_policy": summary["eval"]["ndcg@5"]},
        "seen_phrasings_ctr": {"logger": logger_seen["ctr"], "offline_policy": policy_seen["ctr"],
                               "prompts": len(seen)},
        "valid_fraction": summary["eval"]["valid_fraction"],
        "lift_over_logger": policy_ctr / logger_eval["ctr"] - 1.0,
        "lift_over_bm25": policy_ctr / bm25_eval["ctr"] - 1.0,
        "train": {k: summary[k] for k in ("rows", "steps", "first_loss", "final_epoch_loss", "wall_seconds")},
        "wall_seconds": time.perf_counter() - t0,
    }
    (out / f"result_{method}.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="awr", choices=["dpo", "ipo", "awr", "rwr", "opg"])
    ap.add_argument("--sessions", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warm-start-steps", type=int, default=300)
    ap.add_argument("--out", default="runs/offline_shop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-seed", type=int, default=4321)
    ap.add_argument("--only-logs", action="store_true", help="write the logs (tuples, pairs) and stop")
    args = ap.parse_args()
    if args.only_logs:
        task = ShopTask(ShopTaskConfig())
        print(write_logs(task, args.sessions, Path(args.out) / "data", args.seed))
        return
    r = run(args.method, args.sessions, args.epochs, args.warm_start_steps, args.out, args.seed, args.eval_seed)
    print(f"\nheld-out phrasings: {r['held_out_prompts']} prompts x 64 shoppers (seed {args.eval_seed})")
    print(f"{'ranker':<28}{'ctr':>8}{'ndcg@5':>9}")
    for name in ("logger", "bm25", "behaviour_cloned", "offline_policy"):
        label = {"logger": f"logger pl-bm25:{LOGGING_TEMPERATURE}", "behaviour_cloned": "behaviour cloning only",
                 "offline_policy": f"offline {args.method}"}.get(name, name)
        print(f"{label:<28}{r['ctr'][name]:>8.3f}{r['ndcg@5'][name]:>9.3f}")
    print(f"{'oracle':<28}{r['ctr']['oracle']:>8.3f}")
    print(f"lift over the logger: {100 * r['lift_over_logger']:+.1f}%   over BM25: {100 * r['lift_over_bm25']:+.1f}%   "
          f"valid lists {r['valid_fraction']:.2f}   ({r['wall_seconds']:.0f} s)")
    sp = r["seen_phrasings_ctr"]
    print(f"training phrasings ({sp['prompts']} prompts, wording in the logs): logger {sp['logger']:.3f}, "
          f"offline {args.method} {sp['offline_policy']:.3f} ({100 * (sp['offline_policy'] / sp['logger'] - 1):+.1f}%)")
    if not math.isfinite(r["lift_over_logger"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
