"""Offline RL on the shop, end to end: logs of a randomised logger -> offline training -> true CTR.

1. Historical logs (`feedbackrl.train.shop_logs.write_shop_logs`): `sessions` shoppers search
   with the *training* phrasings of the intents and are shown lists drawn by the Plackett-Luce
   logging policy over BM25 (temperature 0.5), whose list propensities are recorded; the
   shopper simulator decides clicks. The sessions become store interactions and then tuples
   and preference pairs (`feedbackrl.store.convert`), written as Parquet exactly as
   `feedbackrl logs convert` does. With `--prompt-candidates N` each prompt carries BM25's top
   N SKUs for the query after it (`ShopPrompter`, the shop run's `prompt_candidates`): the
   candidates the logger itself ranked, a feature a live system has at serving time.
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
    python benchmarks/offline_shop.py --prompt-candidates 0  # the query alone in the prompt
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
from feedbackrl.tasks.shop import OracleRanker, PlackettLuceLogger, ShopTask, ShopTaskConfig, render_completion
from feedbackrl.train.offline import OfflineConfig, train_offline
from feedbackrl.train.shop_calendar import CalendarShopTask, ShopRunConfig
from feedbackrl.train.shop_logs import LOGGING_TEMPERATURE, write_shop_logs

PROMPT_CANDIDATES = 0


def write_logs(task: CalendarShopTask, sessions: int, out: Path, seed: int, noisy_copies: int = 0) -> dict:
    """Logging-policy sessions on training phrasings -> tuples.parquet and pairs.parquet in `out`
    (and tuples_noisy.parquet with `noisy_copies`), prompts written as `task` writes them."""
    prompter = task.prompter if task.prompter.active else None
    return write_shop_logs(task.shop, sessions, out, seed, LOGGING_TEMPERATURE, prompter=prompter,
                           noisy_copies=noisy_copies)


def seen_prompts(task: CalendarShopTask, per_intent: int = 2) -> list:
    """Prompts of the first training phrasings of each intent: wording that is in the logs."""
    return task._render([task.shop._prompt(it, q) for it in task.world.intents for q in it.train_phrasings[:per_intent]])


def ranker_ctr(task: CalendarShopTask, ranker, draws: int, seed: int, prompts=None) -> dict[str, float]:
    """Task metrics of a ranker's lists for every held-out prompt (`draws` lists per prompt)."""
    rng = np.random.default_rng(seed)
    samples = []
    for p in prompts if prompts is not None else task.eval_prompts():
        q = p.reference
        for _ in range(draws):
            ranked = ranker.rank(q.query, q.segment, q.day, task.shop.config.k, rng)
            samples.append(Sample(prompt=p.text, completion=render_completion(ranked.skus), reference=q))
    return task.evaluate(samples)


def offline_config(method: str, data_dir: Path, out_dir: Path, *, epochs: int, warm_start_steps: int,
                   eval_seed: int, eval_shoppers: int, seed: int, warm_start_source: str = "all",
                   warm_start_examples: int = 400, temperature: float = 0.5, lr: float = 5e-4,
                   credit: str = "sequence") -> OfflineConfig:
    data = [data_dir / ("pairs.parquet" if method in ("dpo", "ipo") else "tuples.parquet")]
    if method in ("awr", "rwr") and (data_dir / "tuples_noisy.parquet").exists():
        data.append(data_dir / "tuples_noisy.parquet")
    return from_dict(OfflineConfig, {
        "name": f"offline-shop-{method}", "out_dir": str(out_dir), "seed": seed, "method": method,
        "data": [str(d) for d in data], "completion_prefix": " ", "task": "shop",
        "shop": {"eval_seed": eval_seed, "eval_shoppers": eval_shoppers},
        "generation": {"max_new_tokens": 6},
        "warm_start": {"steps": warm_start_steps, "source": warm_start_source, "batch_size": 64, "lr": 3e-3,
                       "examples": warm_start_examples},
        "weighted": {"temperature": temperature, "max_weight": 20.0, "normalise": "batch",
                     "credit": credit},
        "dpo": {"beta": 0.1},
        "opg": {"clip_max": 10.0, "baseline": "prompt_mean"},
        "optim": {"lr": lr, "max_grad_norm": 1.0},
        "epochs": epochs, "batch_size": 64, "progress": False,
    }, "offline_shop")


def run(method: str = "awr", sessions: int = 6000, epochs: int = 3, warm_start_steps: int = 300,
        out_dir: str = "runs/offline_shop", seed: int = 0, eval_seed: int = 4321, eval_shoppers: int = 64,
        logger_draws: int = 16, prompt_candidates: int = PROMPT_CANDIDATES, warm_start_source: str = "all",
        warm_start_examples: int = 400, temperature: float = 0.5, lr: float = 5e-4, query_noise: float = 0.0,
        noisy_copies: int = 0, similar_query: str = "", credit: str = "sequence", log=print) -> dict:
    t0 = time.perf_counter()
    task = CalendarShopTask(ShopTask(ShopTaskConfig(eval_seed=eval_seed, eval_shoppers=eval_shoppers)),
                            ShopRunConfig(prompt_candidates=prompt_candidates, query_noise=query_noise,
                                          similar_query=similar_query))
    out = Path(out_dir)
    logs = write_logs(task, sessions, out / "data", seed, noisy_copies)
    log(f"logs: {logs['sessions']} sessions on training phrasings -> {logs['tuples']} tuples, {logs['pairs']} pairs "
        f"(logged CTR {logs['logged_ctr_train_phrasings']:.3f})")
    world = task.world
    logger_eval = ranker_ctr(task, PlackettLuceLogger(world, LOGGING_TEMPERATURE), logger_draws, eval_seed)
    bm25_eval = ranker_ctr(task, task.shop._bm25_ranker(), 1, eval_seed)
    oracle_eval = ranker_ctr(task, OracleRanker(world), 1, eval_seed)
    cfg = offline_config(method, out / "data", out, epochs=epochs, warm_start_steps=warm_start_steps,
                         eval_seed=eval_seed, eval_shoppers=eval_shoppers, seed=seed,
                         warm_start_source=warm_start_source, warm_start_examples=warm_start_examples,
                         temperature=temperature, lr=lr, credit=credit)
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
        "settings": {"prompt_candidates": prompt_candidates, "similar_query": similar_query, "query_noise": query_noise, "noisy_copies": noisy_copies,
                     "warm_start_source": warm_start_source, "warm_start_steps": warm_start_steps,
                     "warm_start_examples": warm_start_examples, "epochs": epochs, "temperature": temperature, "lr": lr,
                     "credit": credit},
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
    ap.add_argument("--warm-start-source", default="all", choices=["all", "best", "task"],
                    help="imitation before the method: every logged list, each prompt's best, or BM25's lists")
    ap.add_argument("--warm-start-examples", type=int, default=400, help="imitation pairs drawn with --warm-start-source task")
    ap.add_argument("--temperature", type=float, default=0.5, help="awr/rwr weight temperature (clicks)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--query-noise", type=float, default=0.0,
                    help="share of imitation prompts with a perturbed query (shop.query_noise)")
    ap.add_argument("--noisy-copies", type=int, default=0,
                    help="copies of each logged tuple with a perturbed query added to awr/rwr's data")
    ap.add_argument("--prompt-candidates", type=int, default=PROMPT_CANDIDATES,
                    help="BM25's top N SKUs written into each prompt (0: the query alone)")
    ap.add_argument("--similar-query", default="",
                    help="write the nearest other logged query into each prompt: minilm or an encoder dir (shop.similar_query)")
    ap.add_argument("--credit", default="sequence", choices=["sequence", "item"],
                    help="awr/rwr: weight whole lists (sequence) or each item's token by its own clicks (item)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch's default); results depend on it in the last digits")
    ap.add_argument("--only-logs", action="store_true", help="write the logs (tuples, pairs) and stop")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.only_logs:
        task = CalendarShopTask(ShopTask(ShopTaskConfig()), ShopRunConfig(prompt_candidates=args.prompt_candidates,
                                                                           similar_query=args.similar_query))
        print(write_logs(task, args.sessions, Path(args.out) / "data", args.seed, args.noisy_copies))
        return
    r = run(args.method, args.sessions, args.epochs, args.warm_start_steps, args.out, args.seed, args.eval_seed,
            prompt_candidates=args.prompt_candidates, warm_start_source=args.warm_start_source,
            warm_start_examples=args.warm_start_examples, temperature=args.temperature, lr=args.lr,
            query_noise=args.query_noise, noisy_copies=args.noisy_copies, similar_query=args.similar_query,
            credit=args.credit)
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
