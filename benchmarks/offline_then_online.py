"""Offline then online vs online only on the shop: held-out CTR against online interactions.

Arms, with the same seed, the same online settings and the same online budget (the `online:`
section of configs/shop_offline_then_online.yaml: GRPO, 128 lists per step, each shown to
`shoppers_per_sample` sampled shoppers whose clicks are the reward, held-out CTR every
`eval_every` steps):

- offline then online: `run_offline_then_online`: the logger's logs (6,000 sessions: they exist
  before the run and are not counted as online interactions) -> behaviour cloning of the logged
  lists (the warm start) -> AWR -> GRPO from the AWR policy.
- online only: GRPO from the same run's behaviour-cloned policy, i.e. from the logging policy's
  imitation, before AWR. Both arms start from the same logs and the same warm start; the only
  difference is the offline RL stage.
- with `--replay F`, a third arm: offline then online with `online.replay.fraction = F`.

True CTR is `ShopTask.evaluate` of the greedy lists for the 47 held-out phrasings, 64 fixed
evaluation shoppers per list (seed `shop.eval_seed`), the same measurement in every arm. The
target is online only's final CTR; each arm's interactions to target are those of its first
evaluation at or above it. Writes `<out>/result.json` and `<out>/report.html` (both curves on
one chart).

    python benchmarks/offline_then_online.py                 # ~10 min on 2 shared cores
    python benchmarks/offline_then_online.py --steps 40 --replay 0.25
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from feedbackrl.config import from_dict, load_config
from feedbackrl.train.config import RunConfig
from feedbackrl.train.offline_then_online import (
    OfflineThenOnlineConfig, online_curve, run_offline_then_online, write_learning_report,
)
from feedbackrl.train.recipe import train

CONFIG = Path("configs/shop_offline_then_online.yaml")
ONLY = "online only (from the logger's imitation)"
OTO = "offline then online"


def interactions_to(curve: dict, target: float) -> int | None:
    """Online interactions at the first evaluation whose CTR reaches `target` (None: never)."""
    for n, ctr in zip(curve["interactions"], curve["ctr"]):
        if ctr >= target - 1e-12:
            return n
    return None


def arm_config(cfg: OfflineThenOnlineConfig, name: str, start: Path, replay: float = 0.0) -> RunConfig:
    """The online section as the recipe runs it, from `start`, under `<run_dir>/<name>`."""
    online = {k: v for k, v in cfg.online.items() if k != "replay"}
    online.update(name=name, out_dir=str(cfg.run_dir), seed=cfg.seed, task="shop",
                  sft={"steps": 0}, model={**cfg.online.get("model", {}), "path": str(start)})
    if replay > 0:
        online["replay"] = {**cfg.online.get("replay", {}), "fraction": replay,
                            "data": [str(cfg.run_dir / "logs" / "tuples.parquet")]}
    return from_dict(RunConfig, online, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--out", default="runs/offline_then_online")
    ap.add_argument("--steps", type=int, default=None, help="online GRPO steps per arm (default: the config's)")
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replay", type=float, default=0.0, help="also run offline then online with this replay fraction")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override a key of the config")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    overrides = [f"out_dir={out}", f"seed={args.seed}", "name=offline-then-online", "online.replay.fraction=0",
                 "offline.warm_start.save=true"] + args.overrides
    if args.steps is not None:
        overrides.append(f"online.steps={args.steps}")
    if args.eval_every is not None:
        overrides.append(f"online.eval_every={args.eval_every}")
    cfg = load_config(args.config, OfflineThenOnlineConfig, overrides)

    curves, results = {}, {}
    # 1. offline then online (logs -> behaviour cloning, kept -> AWR -> GRPO)
    t = time.perf_counter()
    oto = run_offline_then_online(cfg, fresh=True, log=print)
    results["offline_then_online"] = {"wall_seconds": time.perf_counter() - t, "offline": oto["offline"]}

    # 2. online only, from the same run's behaviour-cloned policy (the logger's imitation)
    t = time.perf_counter()
    only_cfg = arm_config(cfg, "online-only", cfg.run_dir / "offline" / "warm_start")
    only = train(only_cfg, resume=False, log=print)
    curves[ONLY] = online_curve(cfg.run_dir / "online-only", only, only_cfg)
    curves[OTO] = oto["curve"]
    results["online_only"] = {"wall_seconds": time.perf_counter() - t}

    # 3. optionally, offline then online with replay, from the same offline policy
    if args.replay > 0:
        t = time.perf_counter()
        rep_cfg = arm_config(cfg, "online-replay", cfg.run_dir / "offline" / "policy", args.replay)
        rep = train(rep_cfg, resume=False, log=print)
        curves[f"offline then online, replay {args.replay:g}"] = online_curve(cfg.run_dir / "online-replay", rep, rep_cfg)
        results["offline_then_online_replay"] = {"wall_seconds": time.perf_counter() - t, "fraction": args.replay}

    only_curve = curves[ONLY]
    target = only_curve["ctr"][-1]
    refs = oto["reference_ctr"]
    to_target = {name: interactions_to(c, target) for name, c in curves.items()}
    budget = only_curve["interactions"][-1]
    oto_n, only_n = to_target[OTO], to_target[ONLY]
    result = {
        "target_ctr": target, "online_budget_interactions": budget, "reference_ctr": refs,
        "interactions_to_target": to_target,
        "offline_then_online_fraction_of_online_only": None if oto_n is None or not only_n else oto_n / only_n,
        "curves": curves, "arms": results, "wall_seconds": time.perf_counter() - t0,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    headline = [("target: online only's final held-out CTR", f"{target:.3f}"),
                ("held-out CTR: logger / BM25", f"{refs['logger']:.3f} / {refs['bm25']:.3f}")]
    headline += [(f"{name}: start -> end CTR, interactions to target",
                  f"{c['ctr'][0]:.3f} -> {c['ctr'][-1]:.3f}, "
                  f"{'never' if to_target[name] is None else f'{to_target[name]:,}'} of {c['interactions'][-1]:,}")
                 for name, c in curves.items()]
    headline.append(("wall seconds", f"{result['wall_seconds']:.0f}"))
    write_learning_report(out / "report.html", "offline then online vs online only (the shop)", curves,
                          {f"logger pl-bm25:{cfg.logs.logging_temperature:g}": refs["logger"], "bm25": refs["bm25"]},
                          headline, target=target)

    print(f"\nheld-out phrasings, 47 prompts x 64 shoppers (seed {only_cfg.shop.get('eval_seed')}); "
          f"online budget {budget:,} sessions per arm")
    print(f"{'arm':<44}{'start':>7}{'end':>7}{'to target':>11}")
    for name, c in curves.items():
        n = to_target[name]
        print(f"{name:<44}{c['ctr'][0]:>7.3f}{c['ctr'][-1]:>7.3f}{'never' if n is None else f'{n:,}':>11}")
    print(f"logger {refs['logger']:.3f}, BM25 {refs['bm25']:.3f}; target = online only's final CTR {target:.3f}")
    print(f"report: {out / 'report.html'}  ({result['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
