"""How fast the shop policy takes up a launched product: one training run of the shop config, and
per simulated day the rank of the launch in the policy's greedy list for each intent whose ideal
top 3 holds it (the demo's `days_to_top3` reading), plus the held-out CTR.

    .venv/bin/python benchmarks/shop_launch.py --seed 1 [--set algo.kl_coef=0 ...] [--trace premium_phone]

`--trace INTENT` also records, at every training step, the policy's probability of each product
as the *first* pick for that intent's first training phrasing (the model renormalised over the
SKUs on sale, as the masked policy samples), and how many of that step's rollouts for the intent
led with a launched product. That is what says whether a slow launch is a matter of exploration
(the launch is never tried at the top) or of credit (tried, and not rewarded).

One JSON line per run is appended to `--out` (and printed). Runs are deterministic for a given
CPU and thread count, not across them; compare settings over several seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def launch_days(day_evals, world) -> dict[str, int | None]:
    """intent -> days from the first launch to its top 3, exactly as the demo reads it
    (`shop_demo.launch_days_to_top3` over the end-of-day greedy lists); its keys are the
    intents whose ideal top 3 holds a launched product on its launch day."""
    from feedbackrl.train.shop_demo import launch_days_to_top3

    by_launch = launch_days_to_top3(world, {e.day: e.lists for e in day_evals if e.step > 0})
    return by_launch[min(by_launch)] if by_launch else {}


def launch_ranks(day_evals, world, intents) -> dict[str, dict[int, int | None]]:
    """intent -> {day: best rank of a product launched mid-run in that day's greedy lists for the
    intent (None: not shown)}, for `intents`, from the first launch day on."""
    launched = list(world.calendar.launches())
    skus = {p.sku for p in launched}
    first = min((p.launch_day for p in launched), default=0)
    out: dict[str, dict[int, int | None]] = {i: {} for i in sorted(intents)}
    for e in day_evals:
        if e.step == 0 or e.day < first:
            continue
        for intent, _query, shown in e.lists:
            if intent in out:
                ranks = [k + 1 for k, s in enumerate(shown) if s in skus]
                best = [r for r in (out[intent].get(e.day), min(ranks) if ranks else None) if r is not None]
                out[intent][e.day] = min(best) if best else None
    return out


class FirstPickTrace:
    """Wraps the loop's advantage computation to record, after each rollout, the first-pick
    probabilities for one intent and how its rollouts began."""

    def __init__(self, task, intent_id: str, watch: int = 6):
        self.task, self.watch, self.rows = task, watch, []
        self.intent = next((i for i in task.world.intents if i.id == intent_id), None)
        if self.intent is None:
            raise SystemExit(f"--trace: no intent {intent_id!r} in the intents file")

    def install(self):
        import feedbackrl.train.online as online

        real = online.OnlineTrainer._advantages
        trace = self

        def wrapped(trainer, roll, ref):
            out = real(trainer, roll, ref)
            trace.record(trainer, roll)
            return out

        online.OnlineTrainer._advantages = wrapped
        return lambda: setattr(online.OnlineTrainer, "_advantages", real)

    def record(self, trainer, roll) -> None:
        import torch

        from feedbackrl.tasks.shop.constraint import sku_token_ids

        task, world, policy = self.task, self.task.world, trainer.policy
        day = task.day
        ids = sku_token_ids(policy.tokenizer, [p.sku for p in world.catalog_on(day)]) or {}
        prompt = task.prompter(self.intent.train_phrasings[0], self.intent.segment, day)
        enc = policy.tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            logits = policy.model(enc["input_ids"].to(policy.device)).logits[0, -1].float().cpu()
        skus = sorted(ids, key=ids.get)
        probs = torch.softmax(logits[[ids[s] for s in skus]], -1)
        launched = {p.sku for p in world.calendar.launches() if p.launch_day <= day}
        top = sorted(range(len(skus)), key=lambda k: -float(probs[k]))[: self.watch]
        shown = {skus[k]: round(float(probs[k]), 4) for k in top}
        shown.update({s: round(float(probs[skus.index(s)]), 4) for s in launched if s in skus})
        mine = [s for s in roll.samples if getattr(s.reference, "intent_id", None) == self.intent.id]
        led = sum(1 for s in mine if s.completion.split()[:1] and s.completion.split()[0] in launched)
        self.rows.append({"step": trainer.step + 1, "day": day, "first_pick": shown,
                          "rollouts": len(mine), "led_by_launch": led})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "shop_grpo.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="key=value override (repeatable)")
    ap.add_argument("--trace", default="", help="an intent id: record its first-pick probabilities per step")
    ap.add_argument("--tag", default="", help="a label written with the result")
    ap.add_argument("--out", default="", help="append the result as one JSON line to this file")
    ap.add_argument("--run-dir", default="", help="where the run writes (default: a temporary directory)")
    args = ap.parse_args(argv)

    import tempfile

    from feedbackrl.config import ConfigError, load_config
    from feedbackrl.train.config import RunConfig
    from feedbackrl.train.recipe import build_task, train
    from feedbackrl.train.shop_demo import shop_demo_config

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.run_dir or tmp
        try:
            cfg = load_config(args.config, RunConfig, [f"out_dir={out_dir}", "progress=false",
                                                       f"seed={args.seed}", *args.sets])
            cfg = shop_demo_config(cfg)
        except (ConfigError, ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        task = build_task(cfg)
        trace = FirstPickTrace(task, args.trace) if args.trace else None
        uninstall = trace.install() if trace else None
        try:
            train(cfg, log=lambda *_: None, task=task)
        finally:
            if uninstall:
                uninstall()
    world = task.world
    launch_day = min((p.launch_day for p in world.calendar.launches()), default=0)
    days = launch_days(task.day_evals, world)
    ranks = launch_ranks(task.day_evals, world, days)
    last = max((e for e in task.day_evals if e.step > 0), key=lambda e: e.step, default=None)
    result = {"tag": args.tag, "seed": args.seed, "sets": args.sets, "launch_day": launch_day,
              "ranks": {i: {str(d): r for d, r in v.items()} for i, v in ranks.items()},
              "days_to_top3": days,
              "final_ctr": round(last.metrics["ctr"], 4) if last else None,
              "wall_s": round(time.perf_counter() - t0, 1)}
    if trace:
        result["trace"] = trace.rows
    line = json.dumps(result)
    print(line if not trace else json.dumps({k: v for k, v in result.items() if k != "trace"}))
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
