"""Offline then online (`feedbackrl train-offline-online CONFIG`): warm start from the shop's
historical logs, then online GRPO from the offline policy, optionally replaying logged tuples.

Stages, each composed from existing recipes and skipped when its output is already there (a
stopped run resumes where it stopped), all under `<out_dir>/<name>/`:

1. `logs/`: `shop_logs.write_shop_logs`: `logs.sessions` searches on the training phrasings,
   shown lists of the Plackett-Luce logger over BM25, clicks from the simulator -> tuples
   (reward = clicks) and preference pairs.
2. `offline/`: `offline.train_offline` with the `offline:` section (`OfflineConfig` keys); the
   data, the shop task and the model are filled in from the logs and the `online:` section, so
   both stages build the same tokenizer and see the same prompts (with `shop.prompt_candidates`,
   BM25's top candidates after the query, in the logs too).
3. `online/`: `recipe.train` with the `online:` section (`RunConfig` keys), starting from the
   offline checkpoint (`model.path`; no SFT); with `online.replay.fraction` > 0 the logged
   tuples are mixed into every step as an off-policy term (`replay.py`).
4. `curve.json` and `report.html`: held-out CTR (the task's fixed evaluation shoppers, greedy
   lists) against online interactions, the logger's and BM25's CTR as reference lines.

Online interactions are simulated shopper sessions scored: each online sample is one list
shown to `shoppers_per_sample` shoppers (`reward.mode: sampled`); an `expected` reward counts
one per list (the closed form stands for many shoppers, so it flatters the count).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from feedbackrl.config import from_dict
from feedbackrl.train.config import RunConfig
from feedbackrl.train.offline import OfflineConfig, train_offline
from feedbackrl.train.shop_calendar import ShopRunConfig
from feedbackrl.train.shop_logs import LOGGING_TEMPERATURE

DONE = ".complete"
# set by this recipe in the offline and online sections; a config that sets them is refused
OFFLINE_FILLED = ("name", "out_dir", "seed", "data", "task", "shop", "completion_prefix")
ONLINE_FILLED = ("name", "out_dir", "seed")


@dataclass
class ShopLogsConfig:
    sessions: int = 6000  # logged searches (one shopper each) on the training phrasings, day `online.shop.day`
    seed: int = 0  # the logger's and the shoppers' draws (evaluation shoppers use shop.eval_seed)
    logging_temperature: float = LOGGING_TEMPERATURE  # Plackett-Luce over BM25 scores / T
    # copies of each logged tuple with a perturbed query (shop_logs.py), added to the offline
    # data of awr/rwr; 0 = the logs alone
    noisy_copies: int = 0

    def validate(self) -> None:
        if self.sessions < 1 or self.logging_temperature <= 0 or self.noisy_copies < 0:
            raise ValueError("sessions: must be >= 1, logging_temperature > 0, noisy_copies >= 0")


@dataclass
class OfflineThenOnlineConfig:
    name: str = "shop-offline-then-online"
    out_dir: str = "runs"
    seed: int = 0
    logs: ShopLogsConfig = field(default_factory=ShopLogsConfig)
    offline: dict[str, Any] = field(default_factory=dict)  # OfflineConfig keys, less OFFLINE_FILLED
    online: dict[str, Any] = field(default_factory=dict)  # RunConfig keys (task: shop), less ONLINE_FILLED

    def validate(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name: must be a plain directory name, got {self.name!r}")
        for section, filled in (("offline", OFFLINE_FILLED), ("online", ONLINE_FILLED)):
            taken = [k for k in filled if k in getattr(self, section)]
            if taken:
                raise ValueError(f"{section}: {', '.join(taken)}: set by the recipe, leave out")
        if self.online.get("task", "shop") != "shop":
            raise ValueError("online.task: offline then online runs on the shop")
        # build both stages now, so a bad key fails at load, before anything runs
        self.stage_configs(Path("<logs>"))

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def stage_configs(self, logs_dir: Path) -> tuple[OfflineConfig, RunConfig]:
        """The offline and online stages' configs, with what the recipe fills in."""
        online = {**self.online, "name": "online", "out_dir": str(self.run_dir), "seed": self.seed, "task": "shop"}
        shop = dict(online.get("shop", {}))
        run_keys = {f.name for f in fields(ShopRunConfig)}
        method = self.offline.get("method", "awr")
        data = [logs_dir / ("pairs.parquet" if method in ("dpo", "ipo") else "tuples.parquet")]
        if self.logs.noisy_copies > 0 and method in ("awr", "rwr"):
            data.append(logs_dir / "tuples_noisy.parquet")
        offline = {**self.offline, "name": "offline", "out_dir": str(self.run_dir), "seed": self.seed,
                   "data": [str(d) for d in data], "task": "shop", "completion_prefix": " ",
                   "shop": {k: v for k, v in shop.items() if k not in run_keys},
                   "model": self.offline.get("model", online.get("model", {}))}
        off_cfg = from_dict(OfflineConfig, offline, "offline")
        # online starts from the offline policy, and replays the logged tuples when asked to
        replay = dict(online.get("replay", {}))
        if float(replay.get("fraction", 0.0)) > 0 and not replay.get("data"):
            replay["data"] = [str(logs_dir / "tuples.parquet")]
        online["replay"] = replay
        online["sft"] = {**online.get("sft", {}), "steps": 0}
        online["model"] = {**online.get("model", {}), "path": str(self.run_dir / "offline" / "policy")}
        return off_cfg, from_dict(RunConfig, online, "online")


def sessions_per_sample(cfg: RunConfig) -> int:
    """Simulated shopper sessions one online sample costs (see the module docstring)."""
    reward = cfg.shop.get("reward", {})
    return int(reward.get("shoppers_per_sample", 8)) if reward.get("mode", "sampled") == "sampled" else 1


def online_curve(run_dir: Path, summary: dict, cfg: RunConfig) -> dict[str, list[float]]:
    """Held-out CTR against online interactions: before training, every `eval_every` steps, at the end."""
    from feedbackrl.report import read_metrics

    per_step = cfg.batch_size * sessions_per_sample(cfg)
    points = {0: summary["initial_eval"]["ctr"]}
    for row in read_metrics(run_dir):
        if "eval/ctr" in row:
            points[row["step"]] = row["eval/ctr"]
    points[summary["steps"]] = summary["final_eval"]["ctr"]
    steps = sorted(points)
    return {"steps": steps, "interactions": [s * per_step for s in steps], "ctr": [points[s] for s in steps]}


def reference_ctrs(task, draws: int = 16, seed: int = 0, temperature: float = LOGGING_TEMPERATURE) -> dict[str, float]:
    """The logger's (`draws` random lists per prompt) and BM25's CTR on the task's held-out prompts,
    scored by the same evaluation shoppers as the policy."""
    import numpy as np

    from feedbackrl.sample import Sample
    from feedbackrl.tasks.shop import PlackettLuceLogger
    from feedbackrl.tasks.shop.text_format import render_completion

    out = {}
    rankers = {"logger": (PlackettLuceLogger(task.world, temperature, bm25=task._bm25_ranker()), draws),
               "bm25": (task._bm25_ranker(), 1)}
    for name, (ranker, n) in rankers.items():
        rng = np.random.default_rng(seed)
        samples = []
        for p in task.eval_prompts():
            q = p.reference
            for _ in range(n):
                samples.append(Sample(p.text, render_completion(ranker.rank(q.query, q.segment, q.day, task.config.k,
                                                                            rng).skus), reference=q))
        out[name] = task.evaluate(samples)["ctr"]
    return out


def run_offline_then_online(cfg: OfflineThenOnlineConfig, *, fresh: bool = False,
                            log: Callable[[str], None] = print) -> dict[str, Any]:
    from feedbackrl.train.recipe import build_task, train
    from feedbackrl.train.shop_logs import write_shop_logs

    t0 = time.perf_counter()
    run_dir = cfg.run_dir
    if fresh:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    logs_dir = run_dir / "logs"
    off_cfg, on_cfg = cfg.stage_configs(logs_dir)
    task = build_task(on_cfg)

    # 1. logs
    if not (logs_dir / DONE).exists():
        # the logged prompts are written as the online task writes them (retrieval context included)
        prompter = task.prompter if task.prompter.active else None
        logs = write_shop_logs(task.shop, cfg.logs.sessions, logs_dir, cfg.logs.seed, cfg.logs.logging_temperature,
                               prompter=prompter, noisy_copies=cfg.logs.noisy_copies)
        (logs_dir / "logs.json").write_text(json.dumps(logs, indent=2))
        (logs_dir / DONE).write_text("")
    logs = json.loads((logs_dir / "logs.json").read_text())
    log(f"logs: {logs['sessions']} sessions -> {logs['tuples']} tuples, {logs['pairs']} pairs "
        f"(logged CTR {logs['logged_ctr_train_phrasings']:.3f})")

    # 2. offline, saved where the online stage starts from
    policy_dir = run_dir / "offline" / "policy"
    if not (policy_dir / DONE).exists():
        from feedbackrl.policy.model import Policy

        off = train_offline(off_cfg, log=log, task=task)
        Policy.load(off["checkpoint"]).save(policy_dir)
        (policy_dir / DONE).write_text("")
    off = json.loads((run_dir / "offline" / "summary.json").read_text())
    if "eval" in off:
        log(f"offline {off['method']}: held-out CTR {off['eval_before']['ctr']:.3f} (behaviour cloned) -> "
            f"{off['eval']['ctr']:.3f}")

    # 3. online
    summary = train(on_cfg, resume=True, log=log, task=task)
    curve = online_curve(run_dir / "online", summary, on_cfg)
    refs = reference_ctrs(task.shop, seed=cfg.seed, temperature=cfg.logs.logging_temperature)
    result = {
        "name": cfg.name, "logs": logs, "offline": {k: off.get(k) for k in ("method", "eval_before", "eval", "steps")},
        "online": {k: summary.get(k) for k in ("initial_eval", "final_eval", "steps", "samples")},
        "sessions_per_sample": sessions_per_sample(on_cfg), "replay_fraction": on_cfg.replay.fraction,
        "curve": curve, "reference_ctr": refs, "checkpoint": summary["checkpoint"],
        "wall_seconds": time.perf_counter() - t0,
    }
    (run_dir / "curve.json").write_text(json.dumps(curve, indent=1))
    write_learning_report(run_dir / "report.html", f"offline then online: {cfg.name}",
                          {"offline then online": curve}, refs, _headline(result))
    (run_dir / "summary.json").write_text(json.dumps(result, indent=2))
    return result


def _headline(result: dict) -> list[tuple[str, Any]]:
    refs, c = result["reference_ctr"], result["curve"]
    return [
        ("logged sessions", result["logs"]["sessions"]),
        ("held-out CTR: logger / BM25", f"{refs['logger']:.3f} / {refs['bm25']:.3f}"),
        ("held-out CTR after offline training", f"{c['ctr'][0]:.3f} ({c['ctr'][0] / refs['logger']:.2f}x the logger)"),
        ("held-out CTR after online training", f"{c['ctr'][-1]:.3f} ({c['interactions'][-1]:,} online sessions)"),
        ("replay fraction", result["replay_fraction"]),
        ("wall seconds", f"{result['wall_seconds']:.0f}"),
    ]


def write_learning_report(path: Path, title: str, curves: dict[str, dict], references: dict[str, float],
                          headline: list[tuple[str, Any]], target: float | None = None) -> Path:
    from feedbackrl.report import learning_report_html

    path = Path(path)
    path.write_text(learning_report_html(title, curves, references, headline, target), encoding="utf-8")
    return path


ONLY_ARM = "online only (from the logger's imitation)"
OTO_ARM = "offline then online"


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


def compare_with_online_only(cfg: OfflineThenOnlineConfig, oto: dict[str, Any], replay: float = 0.0,
                             log: Callable[[str], None] = print) -> dict[str, Any]:
    """After `run_offline_then_online` (with `offline.warm_start.save: true`): the same online
    budget from the same run's behaviour-cloned policy (online only), and with `replay` > 0 a
    third arm from the offline policy with that replay fraction. Writes `comparison.json` and
    rewrites `report.html` with every arm's learning curve on one chart; the target is online
    only's final held-out CTR."""
    from feedbackrl.train.recipe import train

    t0 = time.perf_counter()
    start = cfg.run_dir / "offline" / "warm_start"
    if not (start / "config.json").exists():
        raise ValueError(f"{start}: no behaviour-cloned policy to start online only from; "
                         "set offline.warm_start.save: true (the --compare option does)")
    only_cfg = arm_config(cfg, "online-only", start)
    only = train(only_cfg, resume=False, log=log)
    curves = {ONLY_ARM: online_curve(cfg.run_dir / "online-only", only, only_cfg), OTO_ARM: oto["curve"]}
    if replay > 0:
        rep_cfg = arm_config(cfg, "online-replay", cfg.run_dir / "offline" / "policy", replay)
        rep = train(rep_cfg, resume=False, log=log)
        curves[f"offline then online, replay {replay:g}"] = online_curve(cfg.run_dir / "online-replay", rep, rep_cfg)
    only_curve = curves[ONLY_ARM]
    target = only_curve["ctr"][-1]
    refs = oto["reference_ctr"]
    to_target = {name: interactions_to(c, target) for name, c in curves.items()}
    budget = only_curve["interactions"][-1]
    oto_n = to_target[OTO_ARM]
    result = {
        "target_ctr": target, "online_budget_interactions": budget, "reference_ctr": refs,
        "interactions_to_target": to_target,
        # the measure: the offline arm's interactions to target over online only's budget
        "offline_then_online_fraction_of_online_only": None if oto_n is None or not budget else oto_n / budget,
        "curves": curves, "wall_seconds": time.perf_counter() - t0,
    }
    (cfg.run_dir / "comparison.json").write_text(json.dumps(result, indent=2))
    headline = [("target: online only's final held-out CTR", f"{target:.3f}"),
                ("held-out CTR: logger / BM25", f"{refs['logger']:.3f} / {refs['bm25']:.3f}")]
    headline += [(f"{name}: start -> end CTR, interactions to target",
                  f"{c['ctr'][0]:.3f} -> {c['ctr'][-1]:.3f}, "
                  f"{'never' if to_target[name] is None else f'{to_target[name]:,}'} of {c['interactions'][-1]:,}")
                 for name, c in curves.items()]
    write_learning_report(cfg.run_dir / "report.html", f"offline then online vs online only: {cfg.name}", curves,
                          {f"logger pl-bm25:{cfg.logs.logging_temperature:g}": refs["logger"], "bm25": refs["bm25"]},
                          headline, target=target)
    return result
