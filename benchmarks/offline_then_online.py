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

from feedbackrl.config import load_config
from feedbackrl.train.offline_then_online import (
    OfflineThenOnlineConfig, compare_with_online_only, run_offline_then_online,
)

CONFIG = Path("configs/shop_offline_then_online.yaml")


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

    # offline then online (logs -> behaviour cloning, kept -> AWR -> GRPO), then online only from
    # the same run's behaviour-cloned policy, and optionally the replay arm
    oto = run_offline_then_online(cfg, fresh=True, log=print)
    cmp = compare_with_online_only(cfg, oto, replay=args.replay, log=print)
    result = {**cmp, "offline": oto["offline"], "wall_seconds": time.perf_counter() - t0}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    curves, to_target, refs, target = cmp["curves"], cmp["interactions_to_target"], cmp["reference_ctr"], cmp["target_ctr"]
    budget = cmp["online_budget_interactions"]
    (out / "report.html").write_bytes((cfg.run_dir / "report.html").read_bytes())
    only_cfg_seed = cfg.online.get("shop", {}).get("eval_seed")
    print(f"\nheld-out phrasings, 47 prompts x 64 shoppers (seed {only_cfg_seed}); "
          f"online budget {budget:,} sessions per arm")
    print(f"{'arm':<44}{'start':>7}{'end':>7}{'to target':>11}")
    for name, c in curves.items():
        n = to_target[name]
        print(f"{name:<44}{c['ctr'][0]:>7.3f}{c['ctr'][-1]:>7.3f}{'never' if n is None else f'{n:,}':>11}")
    print(f"logger {refs['logger']:.3f}, BM25 {refs['bm25']:.3f}; target = online only's final CTR {target:.3f}")
    print(f"report: {out / 'report.html'}  ({result['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
